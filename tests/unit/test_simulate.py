"""`mailwarden simulate`: deterministic, labelled, realistic, and understood by the parsers."""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from mailwarden.evaluate import load_simulation, parse_simulation
from mailwarden.simulate import (
    ATTACK_KINDS,
    NETWORKS,
    SimulationSpec,
    labelled_accounts,
    load_labels,
    run_simulation,
    simulate,
)

# A Monday, so that offices are at work and newsletters go out.
SPEC = SimulationSpec(accounts=300, days=1, seed=7, start=date(2026, 11, 2))
QUIET = SimulationSpec(accounts=100, days=1, seed=5, start=date(2026, 11, 1))  # small and cheap
FILES = ("postfix.log", "dovecot.log", "labels.jsonl", "population.json")
ATTACK_NETWORKS = [
    ipaddress.ip_network(NETWORKS[name]) for name in ("attack_a", "attack_b", "attack_v6")
]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sim")
    run_simulation(SPEC, directory)
    return directory


def _population(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((directory / "population.json").read_bytes())
    return data


@pytest.fixture(scope="module")
def quiet_sunday(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sunday")
    run_simulation(QUIET, directory)
    return directory


def test_the_command_with_the_same_seed_writes_byte_identical_files(
    quiet_sunday: Path, tmp_path: Path
) -> None:
    args = ["--out", str(tmp_path), "--accounts", "100", "--days", "1", "--seed", "5"]
    result = CliRunner().invoke(simulate, [*args, "--start", "2026-11-01"])
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (quiet_sunday / name).read_bytes(), name


def test_another_seed_gives_other_logs(quiet_sunday: Path, tmp_path: Path) -> None:
    run_simulation(SimulationSpec(accounts=100, days=1, seed=6, start=QUIET.start), tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() != (quiet_sunday / name).read_bytes(), name


def test_too_few_accounts_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(simulate, ["--out", str(tmp_path), "--accounts", "20"])
    assert result.exit_code == 2
    assert "--accounts" in result.output


def test_every_attack_kind_is_labelled_within_the_simulated_day(sim_dir: Path) -> None:
    labels = load_labels(sim_dir / "labels.jsonl")
    population = _population(sim_dir)
    assert sorted(label.kind for label in labels) == sorted(ATTACK_KINDS)
    for label in labels:
        assert population["start_epoch"] <= label.start < label.end <= population["end_epoch"]
        assert label.expected_actions, label.kind
        assert label.expected_rules, label.kind
        assert label.attacker_ips, label.kind


def test_attackers_come_from_the_reserved_attack_ranges_and_appear_in_the_logs(
    sim_dir: Path,
) -> None:
    text = (sim_dir / "postfix.log").read_text() + (sim_dir / "dovecot.log").read_text()
    for label in load_labels(sim_dir / "labels.jsonl"):
        for ip in label.attacker_ips:
            assert f"[{ip}]" in text or f"rip={ip}," in text, (label.kind, ip)
            if label.kind != "bounce_storm":  # that one mails from the user's own machine
                address = ipaddress.ip_address(ip)
                assert any(
                    address in net for net in ATTACK_NETWORKS if net.version == address.version
                )


def test_the_hijacked_account_sends_hundreds_of_messages_from_the_attacker(sim_dir: Path) -> None:
    hijack = next(x for x in load_labels(sim_dir / "labels.jsonl") if x.kind == "hijack_spam")
    (ip,), (account,) = hijack.attacker_ips, hijack.abusers
    postfix = (sim_dir / "postfix.log").read_text()
    submissions = postfix.count(f"client=unknown[{ip}], sasl_method=PLAIN, sasl_username={account}")
    assert submissions == 600


def test_benign_accounts_are_those_in_no_label(sim_dir: Path) -> None:
    population = _population(sim_dir)
    labelled = labelled_accounts(load_labels(sim_dir / "labels.jsonl"))
    dovecot = (sim_dir / "dovecot.log").read_text()
    users = set(re.findall(r"Login: user=<([^>]+)>", dovecot))
    assert population["accounts"] == SPEC.accounts
    # labels also name accounts that do not exist (sprayed role names, stuffing lists)
    assert SPEC.accounts - len(labelled) <= population["benign_accounts"] < SPEC.accounts
    assert len(users - labelled) > 150  # most benign people log in on a working day


def test_logs_are_in_time_order(sim_dir: Path) -> None:
    for name in ("postfix.log", "dovecot.log"):
        stamps = [line.split(" ", 1)[0] for line in (sim_dir / name).read_text().splitlines()]
        assert stamps == sorted(stamps), name
        # the day's last sessions and retries may end after midnight
        assert stamps[0] >= "2026-11-02T00:00:00" and stamps[-1] < "2026-11-03T02:00:00", name
        assert all(s.endswith("+00:00") for s in stamps)


def test_the_nat_office_trap_is_present(sim_dir: Path) -> None:
    """On rotation day many accounts fail from the office address, then log in from it."""
    office = next(o for o in _population(sim_dir)["offices"] if o["password_rotation_day"] == 0)
    dovecot = (sim_dir / "dovecot.log").read_text()
    ip = re.escape(office["ip"])
    failed = set(re.findall(rf"passwd-file\(([^,]+),{ip},", dovecot))
    logged_in = set(re.findall(rf"Login: user=<([^>]+)>, method=PLAIN, rip={ip},", dovecot))
    assert len(failed) >= 15
    assert failed <= logged_in


def test_other_benign_habits_are_present(sim_dir: Path) -> None:
    population = _population(sim_dir)
    postfix = (sim_dir / "postfix.log").read_text()
    dovecot = (sim_dir / "dovecot.log").read_text()
    bulk = population["bulk_senders"][0]
    assert postfix.count(f"sasl_username={bulk['account']}") >= 500
    assert "orig_to=<" in postfix  # forwarding
    assert "status=bounced" in postfix and "sender non-delivery notification" in postfix
    assert "rip=127.0.0.1, lip=127.0.0.1" in dovecot and ", secured, " in dovecot  # webmail
    assert re.search(r"rip=2001:db8:1", dovecot)  # IPv6 homes
    assert re.search(r"rip=198\.19\.\d+\.\d+", dovecot)  # carrier NAT


def test_the_parsers_understand_every_line(sim_dir: Path) -> None:
    parsed = parse_simulation(load_simulation(sim_dir))
    lines = sum(
        len((sim_dir / name).read_bytes().splitlines()) for name in ("postfix.log", "dovecot.log")
    )
    assert parsed.lines == lines
    assert parsed.unparsed == 0, parsed.unparsed_reasons
    kinds = {event.kind for event in parsed.events}
    assert {"auth", "auth_echo", "submission", "delivery"} <= kinds
