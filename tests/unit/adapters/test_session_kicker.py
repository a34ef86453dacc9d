"""doveadm kick for suspended accounts and blocked addresses.

The real doveadm needs a running Dovecot (the lab tests use it); here a small
executable stands in for it and records the argv it was given, which is what
the kicker controls: the target, the -c config, never a wildcard or an option.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from pathlib import Path

import pytest

from streams.adapters.kick import KickSettings, SessionKicker, kick_target

from .conftest import SignCommand


def fake_doveadm(tmp_path: Path, exit_code: int = 0, sleep: float = 0.0) -> tuple[Path, Path]:
    """An executable that appends its argv to a file and exits with ``exit_code``."""
    calls = tmp_path / "calls.txt"
    script = tmp_path / "doveadm"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{calls}"\n'
        f"sleep {sleep}\n"
        'echo "kicked connections from the following users:"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


async def run_until_idle(kicker: SessionKicker, expected_runs: int) -> None:
    task = asyncio.create_task(kicker.run())
    try:
        for _ in range(200):
            if kicker.kicked + kicker.failed + kicker.nothing_to_kick >= expected_runs:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the kicker did not run")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("action", "subject_type", "subject", "target"),
    [
        ("suspend_login", "account", " dave@mailwarden.test ", "dave@mailwarden.test"),
        ("block_ip", "ip", "2001:DB8::1", "2001:db8::1"),
        ("block_ip", "ip", "::ffff:192.0.2.7", "192.0.2.7"),
        ("block_ip", "prefix", "198.51.100.77/24", "198.51.100.0/24"),
        ("suspend_login", "account", "*", None),
        ("suspend_login", "account", "a?c@x", None),
        ("suspend_login", "account", "-a/tmp/anvil", None),
        ("suspend_login", "account", "two words", None),
        ("suspend_login", "account", "line\nbreak", None),
        ("suspend_smtp", "account", "dave@mailwarden.test", None),
        ("isolate_sender", "account", "dave@mailwarden.test", None),
    ],
)
def test_kick_target(
    sign: SignCommand, action: str, subject_type: str, subject: str, target: str | None
) -> None:
    assert kick_target(sign(action, subject, subject_type)) == target


async def test_kicks_run_doveadm_with_the_config_one_per_target(
    tmp_path: Path, sign: SignCommand
) -> None:
    doveadm, calls = fake_doveadm(tmp_path)
    config = tmp_path / "dovecot.conf"
    kicker = SessionKicker(KickSettings(doveadm=str(doveadm), config=config))
    assert kicker.available()
    for command in (
        sign("suspend_login", "dave@mailwarden.test"),
        sign("suspend_login", "DAVE@mailwarden.test "),  # a different login name to Dovecot
        sign("suspend_login", "dave@mailwarden.test"),  # already waiting: not queued twice
        sign("block_ip", "192.0.2.0/24", "prefix"),
        sign("suspend_smtp", "erin@mailwarden.test"),  # no kick for SMTP suspensions
        sign("suspend_login", "*"),  # refused
    ):
        kicker.request(command)
    await run_until_idle(kicker, 3)
    assert calls.read_text().splitlines() == [
        f"-c {config} kick dave@mailwarden.test",
        f"-c {config} kick DAVE@mailwarden.test",
        f"-c {config} kick 192.0.2.0/24",
    ]
    assert (kicker.kicked, kicker.failed) == (3, 0)


@pytest.mark.parametrize(("exit_code", "outcome"), [(68, "nothing_to_kick"), (75, "failed")])
async def test_doveadm_exit_codes(
    tmp_path: Path, sign: SignCommand, exit_code: int, outcome: str
) -> None:
    doveadm, _ = fake_doveadm(tmp_path, exit_code=exit_code)
    kicker = SessionKicker(KickSettings(doveadm=str(doveadm)))
    kicker.request(sign("suspend_login", "dave@mailwarden.test"))
    await run_until_idle(kicker, 1)
    assert getattr(kicker, outcome) == 1 and kicker.kicked == 0


async def test_a_hanging_doveadm_is_killed(tmp_path: Path, sign: SignCommand) -> None:
    doveadm, _ = fake_doveadm(tmp_path, sleep=30)
    kicker = SessionKicker(KickSettings(doveadm=str(doveadm), timeout=0.3))
    kicker.request(sign("suspend_login", "dave@mailwarden.test"))
    await run_until_idle(kicker, 1)
    assert kicker.failed == 1


async def test_missing_doveadm(tmp_path: Path, sign: SignCommand) -> None:
    kicker = SessionKicker(KickSettings(doveadm=str(tmp_path / "no-such-doveadm")))
    assert not kicker.available()
    kicker.request(sign("suspend_login", "dave@mailwarden.test"))
    await run_until_idle(kicker, 1)
    assert kicker.failed == 1
