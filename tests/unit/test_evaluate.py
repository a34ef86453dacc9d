"""`mailwarden evaluate` and `mailwarden tune`: scoring the rules against a labelled simulation."""

from __future__ import annotations

import base64
import re
from datetime import date
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from mailwarden.evaluate import (
    BenignMap,
    Evaluation,
    ParsedLogs,
    Simulation,
    Verdict,
    detect,
    evaluate,
    evaluate_verdicts,
    false_positives,
    load_simulation,
    parse_simulation,
    score_attack,
)
from mailwarden.simulate import (
    ExpectedAction,
    Label,
    SimulationSpec,
    labelled_accounts,
    run_simulation,
)
from mailwarden.tune import format_sweep, render_report, sweep, tune
from models.policy import Policy

SPEC = SimulationSpec(accounts=300, days=1, seed=11, start=date(2026, 11, 2))
CRAFTED = "<script>alert(1)</script>@x"


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    directory = tmp_path_factory.mktemp("sim")
    run_simulation(SPEC, directory)
    return load_simulation(directory)


@pytest.fixture(scope="module")
def parsed(simulation: Simulation) -> ParsedLogs:
    return parse_simulation(simulation)


@pytest.fixture(scope="module")
def verdicts(parsed: ParsedLogs) -> list[Verdict]:
    decided, _ = detect(parsed.events, Policy())
    return decided


@pytest.fixture(scope="module")
def evaluation(simulation: Simulation, verdicts: list[Verdict]) -> Evaluation:
    return evaluate_verdicts(simulation.labels, simulation.population, verdicts)


# -- the default policy on a small population --------------------------------------------


@pytest.mark.parametrize("kind", ["hijack_spam", "spray_distributed"])
def test_the_default_policy_catches(evaluation: Evaluation, kind: str) -> None:
    result = next(a for a in evaluation.attacks if a.kind == kind)
    assert result.caught, result
    assert result.detected_after is not None and 0 <= result.detected_after < 3600
    assert result.first_rule in {
        "smtp_burst",
        "bounce_storm",
        "password_spray",
        "prefix_spray",
        "recipient_fanout",
        "outbound_volume",
    }


def test_spraying_addresses_are_all_blocked(evaluation: Evaluation) -> None:
    spray = next(a for a in evaluation.attacks if a.kind == "spray_distributed")
    assert spray.actions_taken == spray.actions_expected == 12


def test_no_victim_is_punished(evaluation: Evaluation) -> None:
    assert [a.wrong_actions for a in evaluation.attacks if a.wrong_actions] == []


def test_the_replay_understood_every_line(parsed: ParsedLogs) -> None:
    assert parsed.unparsed == 0, parsed.unparsed_reasons
    assert len(parsed.events) > 20_000


def test_the_nat_office_is_not_blocked_as_a_sprayer(evaluation: Evaluation) -> None:
    """On rotation morning ~27 office accounts fail from the office's address, then succeed.

    The address has a day's history of dozens of accounts logging in
    successfully, which no spraying address has.
    """
    spray = [fp for fp in evaluation.false_positives if fp.rule == "password_spray"]
    assert sum(fp.causes.get("NAT office", 0) for fp in spray) == 0


def test_no_benign_account_loses_its_login(simulation: Simulation, verdicts: list[Verdict]) -> None:
    attacked = labelled_accounts(simulation.labels)
    locked = {
        user
        for v in verdicts
        if v.kind == "command" and v.action == "suspend_login"
        for user in v.users
        if user not in attacked
    }
    assert locked == set()


def test_the_command_prints_json_and_exits_zero(tmp_path: Path) -> None:
    run_simulation(SimulationSpec(accounts=100, days=1, seed=3), tmp_path)  # a quiet Sunday
    result = CliRunner().invoke(evaluate, [str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert [a["kind"] for a in report["attacks"]] == [
        label.kind for label in load_simulation(tmp_path).labels
    ]
    assert any(a["caught"] for a in report["attacks"])
    assert report["benign_accounts"] < 100
    assert report["replay"]["unparsed"] == 0
    assert report["replay"]["lines_per_second"] > 0


def test_the_command_refuses_a_directory_that_is_no_simulation(tmp_path: Path) -> None:
    result = CliRunner().invoke(evaluate, [str(tmp_path)])
    assert result.exit_code == 1
    assert "not a simulation" in result.output


# -- scoring rules, on hand-made decisions ----------------------------------------------------


def _label(**overrides: object) -> Label:
    values: dict[str, object] = {
        "id": "spray",
        "kind": "spray_distributed",
        "start": 1000.0,
        "end": 2000.0,
        "start_iso": "-",
        "end_iso": "-",
        "attacker_ips": ["203.0.113.5"],
        "victims": ["v@example.org"],
        "abusers": [],
        "expected_actions": [ExpectedAction("block_ip", "ip", "203.0.113.5")],
        "forbidden_actions": [ExpectedAction("suspend_login", "account", "v@example.org")],
        "expected_rules": ["password_spray"],
        "description": "-",
    }
    values.update(overrides)
    return Label(**values)  # type: ignore[arg-type]


def _command(action: str, subject: str, epoch: float, rule: str = "password_spray") -> Verdict:
    ip = ":" in subject or subject[0].isdigit()
    users, ips = ((), (subject,)) if ip else ((subject,), ())
    return Verdict("command", rule, action, epoch, users, ips)


def _alert(rule: str, epoch: float, user: str | None = None, ip: str | None = None) -> Verdict:
    return Verdict("alert", rule, "alert", epoch, (user,) if user else (), (ip,) if ip else ())


def test_an_expected_command_after_the_start_catches_the_attack() -> None:
    result = score_attack(_label(), [_command("block_ip", "203.0.113.5", 1042.0)])
    assert result.caught and result.detected_after == 42.0
    assert result.first_rule == "password_spray"
    assert (result.actions_taken, result.actions_expected) == (1, 1)


def test_decisions_before_the_start_or_from_other_rules_do_not_catch() -> None:
    verdicts = [
        _command("block_ip", "203.0.113.5", 999.0),
        _alert("smtp_burst", 1500.0, ip="203.0.113.5"),
        _command("block_ip", "203.0.113.6", 1500.0),
    ]
    assert not score_attack(_label(), verdicts).caught


def test_an_alert_of_an_expected_rule_naming_a_victim_catches() -> None:
    result = score_attack(_label(), [_alert("password_spray", 1100.0, user="v@example.org")])
    assert result.caught and result.detected_after == 100.0


def test_punishing_a_victim_is_reported() -> None:
    result = score_attack(_label(), [_command("suspend_login", "v@example.org", 1100.0, "x")])
    assert result.wrong_actions == ["suspend_login v@example.org (x)"]


def test_false_positives_are_per_ten_thousand_benign_accounts_per_day() -> None:
    verdicts = [
        _alert("smtp_burst", 1.0, user="news@shop.example"),
        _command("suspend_smtp", "news@shop.example", 1.0, "smtp_burst"),
        _alert("password_spray", 2.0, ip="203.0.113.5"),  # the attacker: not a false positive
        _alert("brute_force", 3.0, user="v@example.org"),  # a victim: not a false positive
        Verdict("command", "password_spray", "block_ip", 4.0, (), (), ("203.0.113.0/24",)),
        Verdict("alert", "smtp_burst", "alert", 5.0, ("news@shop.example",), (), allowlisted=True),
    ]
    population = {"bulk_senders": [{"account": "news@shop.example", "ip": "192.0.2.129"}]}
    result = false_positives([_label()], verdicts, BenignMap(population), 5000, 2.0)
    assert len(result) == 1
    burst = result[0]
    assert (burst.rule, burst.alerts, burst.allowlisted) == ("smtp_burst", 2, 1)
    assert (burst.commands, burst.subjects) == (1, 1)
    assert burst.alerts_per_10k_day == 2.0 and burst.commands_per_10k_day == 1.0
    assert burst.causes == {"bulk sender": 1}


# -- tune -----------------------------------------------------------------------------------------


def test_tune_reports_a_row_and_plots_per_value(simulation: Simulation, parsed: ParsedLogs) -> None:
    result = sweep(simulation, parsed, {}, "password_spray", "accounts", [5, 40])
    low, high = result.points
    assert result.labelled and low.attacks == high.attacks == 3  # the attacks meant for the rule
    assert low.caught is not None and high.caught is not None and low.caught > high.caught
    assert sum(low.commands_per_day) > sum(high.commands_per_day)
    table = format_sweep(result).splitlines()
    assert [row.split()[0] for row in table[2:]] == ["5", "40"]
    html = render_report(result)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)


def _crafted_logs(directory: Path) -> None:
    """Twelve failed IMAP logins for an account whose name is an HTML payload."""
    lines = []
    for n in range(12):
        stamp = f"2026-11-02T10:{n:02d}:00.000000+00:00 mx1 dovecot:"
        session = f"AbCdEfGhIj{n:02d}"
        lines.append(
            f"{stamp} auth: passwd-file({CRAFTED},203.0.113.9,<{session}>): Password mismatch"
        )
    (directory / "dovecot.log").write_text("\n".join(lines) + "\n")


def test_tune_escapes_attacker_controlled_names(tmp_path: Path) -> None:
    _crafted_logs(tmp_path)
    out = tmp_path / "report.html"
    args = ["--rule", "brute_force", "--param", "failures", "--values", "5,50", "--host", "mx1"]
    result = CliRunner().invoke(tune, [str(tmp_path), *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@x" in html
    assert "<script>" not in html
    assert html.count("data:image/png;base64,") == 1  # no labels: volume only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule", "nope", "--param", "x", "--values", "1"], "unknown rule"),
        (["--rule", "brute_force", "--param", "enabled", "--values", "1"], "no numeric"),
        (["--rule", "brute_force", "--param", "failures", "--values", "1.5"], "integer"),
    ],
)
def test_tune_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(tune, [str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_tune_refuses_a_value_the_policy_refuses(tmp_path: Path) -> None:
    _crafted_logs(tmp_path)
    args = ["--rule", "brute_force", "--param", "window", "--values", "605"]
    result = CliRunner().invoke(tune, [str(tmp_path), *args])
    assert result.exit_code == 1
    assert "rules.brute_force.window" in result.output
