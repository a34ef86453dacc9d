"""`mailwarden replay`: files in, decisions as JSON lines out, summary on stderr."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from mailwarden.cmd_replay import REPLAY_UNSIGNED_KEY, replay
from models.commands import InvalidCommand, verify_command

REPO = Path(__file__).resolve().parents[2]
RULE_FIXTURES = REPO / "tests" / "fixtures" / "rules"
FIXTURES = sorted(RULE_FIXTURES.glob("*/events.jsonl"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILWARDEN_SIGNING_KEY", "MAILWARDEN_POLICY", "MAILWARDEN_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)


def run_replay(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(replay, [str(arg) for arg in args], catch_exceptions=False)


def decisions(result: Result) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in result.stdout_bytes.splitlines()]


def test_fixtures_replay_into_alerts_and_commands_with_a_summary() -> None:
    result = run_replay("--format", "events", *FIXTURES)
    assert result.exit_code == 0, result.stderr
    out = decisions(result)
    # Each fixture's decisions, plus erin@'s brute-force alert: merged, the sprayers'
    # failures against her add to the 19 of the brute-force fixture.
    assert [d["type"] for d in out].count("command") == 13
    assert [d["type"] for d in out].count("alert") == 16
    assert "lines        2089" in result.stderr
    assert (
        "commands     13 (block_ip 3, isolate_sender 2, require_password_reset 2, "
        "suspend_login 2, suspend_smtp 4)" in result.stderr
    )
    assert "throughput" in result.stderr


def test_same_input_gives_identical_output() -> None:
    first = run_replay("--format", "events", *FIXTURES)
    second = run_replay("--format", "events", *reversed(FIXTURES))
    assert first.stdout_bytes == second.stdout_bytes
    assert first.stdout_bytes


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env.pop("MAILWARDEN_SIGNING_KEY", None)
        completed = subprocess.run(
            [sys.executable, "-m", "mailwarden.cli", "replay", "--format", "events", *FIXTURES],
            capture_output=True,
            check=True,
            env=env,
            cwd=REPO,
        )
        outputs.append(completed.stdout)
    assert outputs[0] == outputs[1] != b""


def test_gzip_and_split_files_merge_in_event_time(tmp_path: Path) -> None:
    whole = run_replay("--format", "events", RULE_FIXTURES / "password_spray" / "events.jsonl")
    lines = (RULE_FIXTURES / "password_spray" / "events.jsonl").read_bytes().splitlines()
    odd, even = tmp_path / "odd.jsonl.gz", tmp_path / "even.jsonl"
    odd.write_bytes(gzip.compress(b"\n".join(lines[1::2]) + b"\n"))
    even.write_bytes(b"\n".join(lines[0::2]) + b"\n")
    split = run_replay("--format", "events", odd, even)
    assert split.stdout_bytes == whole.stdout_bytes
    assert [d["type"] for d in decisions(split)] == ["command", "alert"]


def test_without_a_key_commands_are_signed_with_the_labelled_replay_key() -> None:
    result = run_replay("--format", "events", RULE_FIXTURES / "smtp_burst" / "events.jsonl")
    assert "replay-unsigned" in result.stderr
    command = next(d for d in decisions(result) if d["type"] == "command")
    assert verify_command(command, REPLAY_UNSIGNED_KEY).subject == "alice@example.org"


def test_configured_key_signs_the_commands() -> None:
    result = run_replay(
        "--format",
        "events",
        RULE_FIXTURES / "smtp_burst" / "events.jsonl",
        env={"MAILWARDEN_SIGNING_KEY": "s3cret"},
    )
    assert "replay-unsigned" not in result.stderr
    command = next(d for d in decisions(result) if d["type"] == "command")
    assert verify_command(command, b"s3cret").action == "suspend_smtp"
    with pytest.raises(InvalidCommand):
        verify_command(command, REPLAY_UNSIGNED_KEY)


def test_policy_file_changes_what_fires(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[enforcement]\ndry_run = true\n[rules.smtp_burst]\nthreshold = 29\n")
    result = run_replay(
        "--format", "events", "--policy", policy, RULE_FIXTURES / "smtp_burst" / "events.jsonl"
    )
    commands = [d for d in decisions(result) if d["type"] == "command"]
    assert [(c["subject"], c["dry_run"]) for c in commands] == [
        ("alice@example.org", True),
        ("bob@example.org", True),
    ]


def test_bad_policy_is_a_clear_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[rules.smtp_burst]\nthreshold = -3\n")
    result = CliRunner().invoke(
        replay, ["--format", "events", "--policy", str(policy), str(FIXTURES[0])]
    )
    assert result.exit_code != 0
    assert "rules.smtp_burst.threshold must be positive" in result.output
    assert str(policy) in result.output


def test_lines_that_are_not_events_are_counted_and_kept(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    good = (RULE_FIXTURES / "brute_force" / "events.jsonl").read_bytes()
    events.write_bytes(b"not json at all\n" + good + b'["a list"]\n')
    unparsed = tmp_path / "unparsed.jsonl"
    result = run_replay("--format", "events", "--unparsed", unparsed, events)
    assert result.exit_code == 0
    assert "unparsed     2" in result.stderr
    kept = [orjson.loads(line) for line in unparsed.read_bytes().splitlines()]
    assert [(k["origin"]["line"], k["raw"]) for k in kept] == [
        (1, "not json at all"),
        (47, '["a list"]'),
    ]
    assert [d["type"] for d in decisions(result)] == ["alert"]


def test_raw_lab_logs_replay_through_the_parsers(lab_dir: Path, tmp_path: Path) -> None:
    api = pytest.importorskip("parsers.api")
    if not hasattr(api, "LogParser"):
        pytest.skip("parsers.api.LogParser is not written yet")
    policy = tmp_path / "policy.toml"
    policy.write_text("[rules.password_spray]\naccounts = 2\nfailures = 4\n")
    result = run_replay(
        "--host",
        "mail",
        "--year",
        "2026",
        "--policy",
        policy,
        lab_dir / "postfix.log",
        lab_dir / "dovecot.log",
    )
    assert result.exit_code == 0, result.stderr
    assert "lines        428" in result.stderr
    blocked = {d["subject"] for d in decisions(result) if d.get("action") == "block_ip"}
    # S13: five failed SMTP AUTHs from 127.0.0.23, some against unknown users.
    assert "127.0.0.23" in blocked
