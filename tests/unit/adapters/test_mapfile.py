"""The map-file adapter: rendering, atomic writes, reloads, and what it refuses to write."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from models.commands import Command
from models.enforcement import DEFAULT_SMTP_RESPONSES, ClientReplies
from streams.adapters.control import ControlConsumer
from streams.adapters.mapfile import (
    HEADER,
    InvalidSubject,
    MapfileSettings,
    MapfileWriter,
    MapOutput,
    TrackedCommands,
    account_key,
    check_outputs,
    mapfile_overrides,
    mapfile_settings,
    render,
    run_reload,
    write_atomically,
)
from tests.unit.adapters.conftest import AUDIT_REASON, KEY, SignCommand, ref

NOW = 1_800_000_000.0
REPLIES = ClientReplies()
PHRASES = {
    "block_ip": "client address blocked",
    "suspend_smtp": "account suspended",
    "suspend_login": "account suspended",
}


def entry(key: str, command: Command, verdict: str = "REJECT") -> str:
    """A map line: the key, the verdict and what the client is told about ``command``."""
    return f"{key} {verdict} {PHRASES[command.action]} {ref(command)}\n"


def tracked(*commands: Command) -> TrackedCommands:
    active = TrackedCommands(KEY)
    for command in commands:
        active.apply(command.to_json(), NOW)
    return active


def recorder(tmp_path: Path, exit_code: int = 0, name: str = "reload") -> tuple[list[str], Path]:
    """A real executable that appends its arguments to a file, then exits ``exit_code``."""
    script = tmp_path / f"{name}.py"
    marker = tmp_path / f"{name}.txt"
    script.write_text(
        "import sys\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"sys.exit({exit_code})\n",
        encoding="utf-8",
    )
    return [sys.executable, str(script)], marker


def reload_lines(marker: Path) -> list[str]:
    return marker.read_text(encoding="utf-8").splitlines() if marker.exists() else []


def writer_for(
    tmp_path: Path, active: TrackedCommands, *outputs: MapOutput, argv: list[str] | None = None
) -> MapfileWriter:
    settings = MapfileSettings(outputs=outputs, reload_command=tuple(argv or ()), reload_timeout=10)
    return MapfileWriter(active, settings, clock=lambda: NOW, retry_initial=0.0)


# -- rendering ------------------------------------------------------------------


def test_texthash_is_sorted_deduplicated_and_independent_of_arrival_order(
    sign: SignCommand,
) -> None:
    commands = [
        sign("block_ip", "192.0.2.20", "ip", issued=NOW - 10),
        sign("block_ip", "192.0.2.3", "ip", issued=NOW - 10),
        sign("block_ip", "2001:DB8::1", "ip", issued=NOW - 10),
        sign("block_ip", "::ffff:198.51.100.4", "ip", issued=NOW - 10),
        sign("block_ip", "203.0.113.0/24", "prefix", issued=NOW - 10),
    ]
    output = MapOutput(Path("client_access"), "postfix-texthash", frozenset({"block_ip"}))
    forward = render(output, tracked(*commands).in_force(NOW), DEFAULT_SMTP_RESPONSES, REPLIES)
    backward = render(
        output, tracked(*reversed(commands)).in_force(NOW), DEFAULT_SMTP_RESPONSES, REPLIES
    )
    assert forward == backward
    assert forward.text == HEADER + (
        entry("192.0.2.3", commands[1])
        + entry("192.0.2.20", commands[0])
        + entry("198.51.100.4", commands[3])
        + entry("203.0.113", commands[4])
        + entry("2001:db8::1", commands[2])
    )
    assert forward.entries == 5
    assert "threshold" not in forward.text


@pytest.mark.parametrize("rule_reason", [False, True])
def test_account_file_keeps_the_strongest_verdict_and_sanitizes_rule_reasons(
    sign: SignCommand, rule_reason: bool
) -> None:
    active = TrackedCommands(
        KEY,
        {**DEFAULT_SMTP_RESPONSES, "suspend_smtp": "HOLD"},
        ClientReplies(rule_reason=rule_reason),
    )
    bob_smtp = sign("suspend_smtp", "Bob@Example.org", reason="burst", issued=NOW - 10)
    bob_login = sign(
        "suspend_login", "bob@example.org", reason="stolen\r\nREJECT x", issued=NOW - 10
    )
    carol = sign("suspend_smtp", "carol@example.org", reason="\x00\x01", issued=NOW - 10)
    for command in (
        bob_smtp,
        bob_login,
        carol,
        sign("block_ip", "192.0.2.1", "ip", issued=NOW - 10),
    ):
        active.apply(command.to_json(), NOW)
    output = MapOutput(
        Path("sasl_access"), "postfix-texthash", frozenset({"suspend_smtp", "suspend_login"})
    )
    rendered = render(output, active.in_force(NOW), active.responses, active.replies)
    bob = (
        f"bob@example.org REJECT stolen REJECT x {ref(bob_login)}\n"
        if rule_reason
        else entry("bob@example.org", bob_login)
    )
    assert rendered.text == HEADER + bob + entry("carol@example.org", carol, "HOLD")


def test_cidr_and_list_formats_write_prefixes_most_specific_first(sign: SignCommand) -> None:
    wide, narrow, host, v6 = (
        sign("block_ip", "192.0.2.0/24", "prefix", issued=NOW - 10),
        sign("block_ip", "192.0.2.128/25", "prefix", issued=NOW - 10),
        sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10),
        sign("block_ip", "2001:db8::/32", "prefix", issued=NOW - 10),
    )
    commands = tracked(wide, narrow, host, v6).in_force(NOW)
    cidr = render(MapOutput(Path("c"), "postfix-cidr"), commands, DEFAULT_SMTP_RESPONSES, REPLIES)
    assert cidr.text == HEADER + (
        entry("192.0.2.7", host)
        + entry("192.0.2.128/25", narrow)
        + entry("192.0.2.0/24", wide)
        + entry("2001:db8::/32", v6)
    )
    listed = render(MapOutput(Path("l"), "list"), commands, DEFAULT_SMTP_RESPONSES, REPLIES)
    assert listed.text == HEADER + "192.0.2.7\n192.0.2.128/25\n192.0.2.0/24\n2001:db8::/32\n"


def test_prefixes_texthash_cannot_express_are_skipped_and_counted(sign: SignCommand) -> None:
    host = sign("block_ip", "198.51.100.9", "ip", issued=NOW - 10)
    active = tracked(
        sign("block_ip", "192.0.2.128/25", "prefix", issued=NOW - 10),
        sign("block_ip", "2001:db8::/48", "prefix", issued=NOW - 10),
        host,
    )
    rendered = render(MapOutput(Path("t")), active.in_force(NOW), DEFAULT_SMTP_RESPONSES, REPLIES)
    assert rendered.text == HEADER + entry("198.51.100.9", host)
    assert rendered.skipped == {"prefix not expressible in texthash": 2}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("evil user@example.org", "bad account characters"),
        ("a\tb@example.org", "bad account characters"),
        ("x@example.org\nmallory@example.org", "bad account characters"),
        ('"quoted"@example.org', "bad account characters"),
        ("müller@example.org", "bad account characters"),
        ("#comment", "bad account characters"),
        ("example.org", "ambiguous account key"),
        ("user@", "ambiguous account key"),
        ("@example.org", "ambiguous account key"),
        ("a@b@example.org", "ambiguous account key"),
        ("a" * 321, "bad account length"),
    ],
)
def test_unsafe_account_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidSubject) as caught:
        account_key(name)
    assert caught.value.reason == reason


def test_plain_account_names_are_accepted() -> None:
    assert account_key(" Alice@Example.ORG ") == "alice@example.org"
    assert account_key("bob") == "bob"
    assert account_key("o'neil+tag@example.org") == "o'neil+tag@example.org"


def test_invalid_accounts_are_skipped_never_written(sign: SignCommand) -> None:
    active = tracked(
        sign("suspend_smtp", "ok@example.org", issued=NOW - 10),
        sign("suspend_smtp", "x REJECT@example.org", issued=NOW - 10),
        sign("suspend_login", "example.org", issued=NOW - 10),
    )
    output = MapOutput(Path("s"), "list", frozenset({"suspend_smtp", "suspend_login"}))
    rendered = render(output, active.in_force(NOW), DEFAULT_SMTP_RESPONSES, REPLIES)
    assert rendered.text == HEADER + "ok@example.org\n"
    assert rendered.skipped == {"bad account characters": 1, "ambiguous account key": 1}


# -- settings ---------------------------------------------------------------------


def test_settings_refuse_a_shell_string_and_mixed_key_types(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="list of arguments"):
        mapfile_settings({"reload_command": "postfix reload; rm -rf /"}, tmp_path)
    with pytest.raises(ValueError, match="do not mix"):
        mapfile_settings(
            {"outputs": [{"path": "m", "actions": ["block_ip", "suspend_smtp"]}]}, tmp_path
        )
    with pytest.raises(ValueError, match="cidr table holds addresses only"):
        mapfile_settings(
            {"outputs": [{"path": "m", "format": "postfix-cidr", "actions": ["suspend_smtp"]}]},
            tmp_path,
        )
    with pytest.raises(ValueError, match="unknown map format"):
        mapfile_settings({"outputs": [{"path": "m", "format": "hash"}]}, tmp_path)


def test_settings_resolve_paths_and_the_command_line_overrides(tmp_path: Path) -> None:
    settings = mapfile_settings(
        {
            "reload_command": ["postfix", "reload"],
            "outputs": [{"path": "client_access"}],
        },
        tmp_path,
    )
    assert settings.outputs == (MapOutput(tmp_path / "client_access"),)
    assert settings.reload_command == ("postfix", "reload")
    cli = mapfile_overrides(
        settings, tmp_path / "hosts", "list", ["block_ip"], "haproxy-reload --now 'a b'"
    )
    assert cli.outputs == (MapOutput(tmp_path / "hosts", "list"),)
    assert cli.reload_command == ("haproxy-reload", "--now", "a b")
    with pytest.raises(ValueError, match="no output"):
        mapfile_overrides(MapfileSettings(), None, "list", ["block_ip"], None)


# -- writing and reloading --------------------------------------------------------


def test_atomic_write_replaces_the_file_with_mode_0644_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "map"
    target.write_text("old\n", encoding="ascii")
    os.chmod(target, 0o600)
    write_atomically(target, "new\n")
    assert target.read_text(encoding="ascii") == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["map"]


async def test_change_writes_and_reloads_once_unchanged_content_does_not(
    tmp_path: Path, sign: SignCommand
) -> None:
    argv, marker = recorder(tmp_path)
    block = sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10)
    active = tracked(block)
    addresses = MapOutput(tmp_path / "client_access")
    accounts = MapOutput(
        tmp_path / "sasl_access", actions=frozenset({"suspend_smtp", "suspend_login"})
    )
    writer = writer_for(tmp_path, active, addresses, accounts, argv=[*argv, "reload"])
    assert await writer.sync()
    assert addresses.path.read_text(encoding="ascii") == HEADER + entry("192.0.2.7", block)
    assert accounts.path.read_text(encoding="ascii") == HEADER
    assert reload_lines(marker) == ["reload"]
    assert not await writer.sync()
    assert reload_lines(marker) == ["reload"]
    # A restarted adapter finds the same content on disk: no write, no reload.
    restarted = writer_for(tmp_path, active, addresses, accounts, argv=[*argv, "reload"])
    assert not await restarted.sync()
    assert reload_lines(marker) == ["reload"]


async def test_release_and_expiry_remove_entries(tmp_path: Path, sign: SignCommand) -> None:
    argv, marker = recorder(tmp_path)
    active = tracked(
        sign("block_ip", "192.0.2.7", "ip", reason="a", issued=NOW - 100),
        sign("block_ip", "192.0.2.8", "ip", reason="b", issued=NOW - 100, duration=130),
    )
    clock = [NOW]
    output = MapOutput(tmp_path / "m", "list")
    settings = MapfileSettings(outputs=(output,), reload_command=tuple(argv))
    writer = MapfileWriter(active, settings, clock=lambda: clock[0])
    await writer.sync()
    assert output.path.read_text(encoding="ascii") == HEADER + "192.0.2.7\n192.0.2.8\n"
    release = sign("release", "192.0.2.7", "ip", releases="block_ip", issued=NOW - 5)
    active.apply(release.to_json(), NOW)
    assert active.changed.is_set()
    await writer.sync()
    assert output.path.read_text(encoding="ascii") == HEADER + "192.0.2.8\n"
    assert active.next_expiry() == NOW + 30
    clock[0] = NOW + 30
    await writer.sync()
    assert output.path.read_text(encoding="ascii") == HEADER
    assert len(reload_lines(marker)) == 3
    assert active.stats.expired == 1


async def test_forged_and_dry_run_commands_are_ignored(tmp_path: Path, sign: SignCommand) -> None:
    active = tracked(
        sign("block_ip", "192.0.2.66", "ip", key=b"not the key", issued=NOW - 10),
        sign("block_ip", "192.0.2.67", "ip", dry_run=True, issued=NOW - 10),
    )
    forged = sign("block_ip", "192.0.2.68", "ip", issued=NOW - 10).to_dict()
    forged["subject"] = "192.0.2.69"
    active.apply(orjson.dumps(forged), NOW)
    output = MapOutput(tmp_path / "m", "list")
    writer = writer_for(tmp_path, active, output)
    await writer.sync()
    assert output.path.read_text(encoding="ascii") == HEADER
    assert active.stats.rejected == {"bad signature": 2}
    assert not active.changed.is_set()


async def test_failed_reload_is_counted_and_retried(tmp_path: Path, sign: SignCommand) -> None:
    argv, marker = recorder(tmp_path, exit_code=3)
    active = tracked(sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10))
    writer = writer_for(tmp_path, active, MapOutput(tmp_path / "m"), argv=argv)
    await writer.sync()
    assert writer.reloads_failed == 1
    # The file is in place; the reload is retried on the next tick, not forgotten.
    await writer.sync()
    assert writer.reloads_failed == 2
    assert len(reload_lines(marker)) == 2
    good_argv, good_marker = recorder(tmp_path, name="fixed")
    writer.settings = MapfileSettings(writer.settings.outputs, tuple(good_argv))
    await writer.sync()
    assert writer.reloads_ok == 1
    await writer.sync()
    assert len(reload_lines(good_marker)) == 1


async def test_reload_that_cannot_start_or_hangs_fails_cleanly(tmp_path: Path) -> None:
    missing = await run_reload([str(tmp_path / "no-such-program")], 5)
    assert not missing.ok and "cannot run" in missing.detail
    started = time.monotonic()
    hung = await run_reload([sys.executable, "-c", "import time; time.sleep(60)"], 0.5)
    assert not hung.ok and "did not finish" in hung.detail
    assert time.monotonic() - started < 10


def test_subjects_never_reach_the_reload_command(tmp_path: Path, sign: SignCommand) -> None:
    active = tracked(sign("suspend_smtp", "$(touch pwned)@example.org", issued=NOW - 10))
    output = MapOutput(tmp_path / "m", actions=frozenset({"suspend_smtp"}))
    rendered = render(output, active.in_force(NOW), active.responses, active.replies)
    assert rendered.text == HEADER
    assert rendered.skipped == {"bad account characters": 1}


# -- the files as Postfix reads them ------------------------------------------------


@pytest.mark.skipif(shutil.which("postmap", path="/usr/sbin:/usr/bin") is None, reason="no postmap")
async def test_postfix_reads_the_written_tables(tmp_path: Path, sign: SignCommand) -> None:
    host, net, v6, alice = (
        sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10),
        sign("block_ip", "198.51.100.0/24", "prefix", issued=NOW - 10),
        sign("block_ip", "2001:db8::/32", "prefix", issued=NOW - 10),
        sign("suspend_smtp", "alice@example.org", issued=NOW - 10),
    )
    active = tracked(host, net, v6, alice)
    texthash = MapOutput(tmp_path / "client_access")
    cidr = MapOutput(tmp_path / "client_cidr", "postfix-cidr")
    sasl = MapOutput(tmp_path / "sasl_access", actions=frozenset({"suspend_smtp"}))
    await writer_for(tmp_path, active, texthash, cidr, sasl).sync()
    (tmp_path / "main.cf").write_text("", encoding="ascii")
    postmap = shutil.which("postmap", path="/usr/sbin:/usr/bin")
    assert postmap is not None

    def query(key: str, table: str) -> str:
        result = subprocess.run(
            [postmap, "-c", str(tmp_path), "-q", key, table],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result.stdout.strip() if result.returncode == 0 else f"rc={result.returncode}"

    def answer(command: Command) -> str:
        return entry("", command).strip()

    assert query("192.0.2.7", f"texthash:{texthash.path}") == answer(host)
    assert query("198.51.100", f"texthash:{texthash.path}") == answer(net)
    assert query("192.0.2.8", f"texthash:{texthash.path}") == "rc=1"
    assert query("198.51.100.77", f"cidr:{cidr.path}") == answer(net)
    assert query("2001:db8::5", f"cidr:{cidr.path}") == answer(v6)
    assert query("203.0.113.1", f"cidr:{cidr.path}") == "rc=1"
    assert query("ALICE@example.org", f"texthash:{sasl.path}") == answer(alice)
    assert AUDIT_REASON not in texthash.path.read_text(encoding="ascii")


async def test_a_failed_write_is_counted_and_retried(tmp_path: Path, sign: SignCommand) -> None:
    argv, marker = recorder(tmp_path)
    blocker = tmp_path / "maps"
    blocker.write_text("a file where the directory should be", encoding="ascii")
    active = tracked(sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10))
    output = MapOutput(blocker / "client_access", "list")
    writer = writer_for(tmp_path, active, output, argv=argv)
    assert not await writer.sync()
    assert writer.write_failures == 1 and reload_lines(marker) == []
    blocker.unlink()
    blocker.mkdir()
    assert await writer.sync()
    assert output.path.read_text(encoding="ascii") == HEADER + "192.0.2.7\n"
    assert len(reload_lines(marker)) == 1


def test_outputs_in_a_missing_directory_are_refused_at_start(tmp_path: Path) -> None:
    settings = MapfileSettings(outputs=(MapOutput(tmp_path / "nowhere" / "map"),))
    with pytest.raises(ValueError, match="does not exist"):
        check_outputs(settings)
    check_outputs(MapfileSettings(outputs=(MapOutput(tmp_path / "map"),)))


async def test_running_writer_drops_expired_entries_without_any_new_record(
    tmp_path: Path, sign: SignCommand
) -> None:
    now = time.time()
    active = TrackedCommands(KEY)
    active.apply(sign("block_ip", "192.0.2.7", "ip", issued=now - 10, duration=11.5).to_json())
    output = MapOutput(tmp_path / "m", "list")
    writer = MapfileWriter(active, MapfileSettings(outputs=(output,), check_interval=5.0))
    task = asyncio.create_task(writer.run(None))
    try:
        deadline = time.monotonic() + 10
        while read_text(output.path) != HEADER + "192.0.2.7\n":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # The loop wakes at the expiry itself, not only every check_interval.
        while read_text(output.path) != HEADER:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert time.time() - now < 4.0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_files_are_left_alone_until_the_control_topic_is_read(
    tmp_path: Path, sign: SignCommand
) -> None:
    output = MapOutput(tmp_path / "m", "list")
    output.path.write_text("198.51.100.1\n", encoding="ascii")
    active = tracked(sign("block_ip", "192.0.2.7", "ip", issued=NOW - 10))
    # A broker nobody listens on: the consumer never catches up.
    control = ControlConsumer(active, "127.0.0.1:9", "mail.control")
    writer = writer_for(tmp_path, active, output)
    task = asyncio.create_task(writer.run(control))
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert output.path.read_text(encoding="ascii") == "198.51.100.1\n"


async def test_running_writer_renders_only_after_a_change(
    tmp_path: Path, sign: SignCommand
) -> None:
    argv, marker = recorder(tmp_path)
    active = tracked(sign("suspend_smtp", "bad name@example.org", issued=NOW - 10))
    output = MapOutput(tmp_path / "m", "list", frozenset({"suspend_smtp"}))
    settings = MapfileSettings(outputs=(output,), reload_command=tuple(argv), check_interval=0.05)
    writer = MapfileWriter(active, settings, clock=lambda: NOW)
    task = asyncio.create_task(writer.run(None))
    try:
        await asyncio.sleep(0.5)
        assert writer.skipped == {"bad account characters": 1}
        active.apply(sign("suspend_smtp", "ok@example.org", issued=NOW - 5).to_json(), NOW)
        deadline = time.monotonic() + 10
        while len(reload_lines(marker)) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert writer.skipped == {"bad account characters": 2}
        assert read_text(output.path) == HEADER + "ok@example.org\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def read_text(path: Path) -> str:
    return path.read_text(encoding="ascii") if path.exists() else ""
