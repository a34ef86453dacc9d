"""Coverage-guided fuzzing of `parsers.api.LogParser` with atheris (libFuzzer).

Not a pytest module (its name does not match ``test_*.py``); the hypothesis
properties in tests/unit/test_parser_properties.py are the always-on part.
This harness runs for as long as you let it and looks for what a hundred
examples do not reach:

- ``feed`` raising, or its own catch-all answering "internal parser error";
- a ParseResult with not exactly one of events / ignored / error;
- an event that orjson cannot serialize, or a client_ip that is not the
  canonical ASCII form of an address;
- a client IP that is written nowhere in the input, in any valid form (invented
  or normalized from a look-alike).

Run (atheris is a dev extra, see docs/parsers.md):

    .venv/bin/python tests/fuzz/fuzz_parsers.py --write-seeds /tmp/mw-fuzz-seeds
    .venv/bin/python tests/fuzz/fuzz_parsers.py /tmp/mw-fuzz-seeds -max_total_time=600
    .venv/bin/python tests/fuzz/fuzz_parsers.py --replay crash-<sha1>   # no atheris needed

One input is split on newlines and fed line by line to one parser, so the
fuzzer also reaches the correlation state (queue ids, sessions, echoes).
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from models.events import Event, Origin  # noqa: E402
from parsers.api import LogParser  # noqa: E402

ORIGIN_PATH = "fuzz.log"
MAX_LINES = 64
YEAR = 2026
ADDRESS_TOKEN = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*")
LONGEST_ADDRESS = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")

SEEDS = (
    "Nov 27 09:13:07 mail postfix/submission/smtpd[4242]: connect from unknown[192.0.2.21]",
    "Nov 27 09:13:07 mail postfix/submission/smtpd[4242]: Anonymous TLS connection established "
    "from unknown[192.0.2.21]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "Nov 27 09:13:07 auth: Info: passwd-file(alice@example.org,192.0.2.21): Password mismatch",
    "Nov 27 09:13:09 mail postfix/submission/smtpd[4242]: warning: unknown[192.0.2.21]: SASL "
    "PLAIN authentication failed: (reason unavailable), sasl_username=alice@example.org",
    "Nov 27 09:13:09 mail postfix/submission/smtpd[4242]: disconnect from unknown[192.0.2.21] "
    "ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5",
    "Nov 27 09:12:55 mail postfix/submission/smtpd[4242]: 3A1B2C3D4E5: client=unknown[192.0.2.11]"
    ", sasl_method=PLAIN, sasl_username=alice@example.org",
    "Nov 27 09:12:55 mail postfix/qmgr[4201]: 3A1B2C3D4E5: from=<alice@example.org>, "
    "size=568, nrcpt=1 (queue active)",
    "Nov 27 09:12:55 mail postfix/smtp[4312]: 3A1B2C3D4E5: to=<ok1@example.net>, relay=127.0.0.1"
    "[127.0.0.1]:24026, delay=0.02, delays=0.01/0.01/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Nov 27 09:14:07 mail postfix/smtpd[4300]: NOQUEUE: reject: RCPT from unknown[192.0.2.25]: "
    "554 5.7.1 <victim@example.net>: Relay access denied; from=<stranger@example.org> "
    "to=<victim@example.net> proto=ESMTP helo=<client192-0-2-25.example>",
    "Nov 27 09:14:39 auth: Info: passwd-file(alice@example.org,192.0.2.51,<Zm9vYmFyYmF6MTIz>)"
    ": Password mismatch",
    "Nov 27 09:14:41 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 "
    "attempts in 2 secs): user=<alice@example.org>, method=PLAIN, rip=192.0.2.51, "
    "lip=127.0.0.1, session=<Zm9vYmFyYmF6MTIz>",
    "Nov 27 09:14:32 imap-login: Info: Login: user=<alice@example.org>, method=PLAIN, "
    "rip=192.0.2.41, lip=127.0.0.1, mpid=4377, session=<cXV1eHF1dXg0NTY>",
    "Jul 02 13:49:32 hostname dovecot[442]: dovecot: auth(default): pam(account@example.com,"
    "198.51.100.206): pam_authenticate() failed: User not known to the underlying "
    "authentication module: 2 Time(s)",
    "Aug 30 00:10:57 auth(info@example.com,192.0.2.110,sasl:login)<TWFpbHdhcmRlbjAx>: Info: sql: "
    "Password mismatch (given password: Example-Secret-1)",
    "@4000000069b3a1c2077a9e94 dovecot-auth: pam_unix(dovecot:auth): authentication failure; "
    "logname= uid=0 euid=0 tty=dovecot ruser=root rhost=203.0.113.225  user=root",
    "Nov 27 09:13:09 mail saslauthd[1234]: do_auth         : auth failure: [user=bob] "
    "[service=smtp] [realm=example.org] [mech=pam] [reason=PAM auth error]",
    "Jul 11 09:16:37 mx2 roundcube: IMAP Error: Login failed for postmaster from 198.51.100.4. "
    "AUTHENTICATE PLAIN: A0002 NO Login failed. in rcube_imap.php on line 200",
    "2026-12-31T09:56:17.123456+01:00 mx3 dovecot: auth-worker(4377): conn unix:auth-worker "
    "(pid=4019,uid=110): auth-worker<1>: sql(nobody@example.com,203.0.113.9): unknown user",
)


class Violation(AssertionError):
    """The parser broke one of its promises on this input."""


def check_event(event: Event, text: str) -> None:
    try:
        orjson.dumps(event)
    except TypeError as exc:
        raise Violation(f"event does not serialize: {exc}: {event!r}") from exc
    ip = event.client_ip
    if ip is None:
        return
    try:
        canonical = str(ipaddress.ip_address(ip))
    except ValueError as exc:
        raise Violation(f"client_ip {ip!r} is not an address") from exc
    if canonical != ip:
        raise Violation(f"client_ip {ip!r} is not canonical ({canonical})")
    if ip.lower() not in text.lower() and ip not in written_addresses(text):
        raise Violation(f"client_ip {ip} appears nowhere in the input")


def written_addresses(text: str) -> set[str]:
    """The canonical form of every address written in ASCII in ``text``.

    A daemon may write an address in another valid form than the canonical one
    (``::2.0.2.21`` for ``::200:215``, ``::ffff:192.0.2.1`` for its IPv4 form);
    a look-alike (fullwidth digits, a leading zero) is not an address here.
    """
    found = set()
    for token in ADDRESS_TOKEN.findall(text):
        # an address may start at or after a colon in the token (``ipv6:::1.2.3.4``
        # gives the token ``6:::1.2.3.4``)
        colons = [at for at, char in enumerate(token) if char == ":"]
        starts = {0, *colons, *(at + 1 for at in colons)}
        for start in starts:
            candidate = token[start:]
            if len(candidate) > LONGEST_ADDRESS:
                continue
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            found.add(str(address))
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                found.add(str(address.ipv4_mapped))
    return found


def input_lines(data: bytes) -> list[bytes]:
    """The lines of one fuzzer input, as a log would give them (at most MAX_LINES)."""
    return data.split(b"\n")[:MAX_LINES]


def test_one_input(data: bytes) -> None:
    parser = LogParser(host=None, timezone="UTC", year=YEAR)
    for number, raw in enumerate(input_lines(data), 1):
        result = parser.feed(raw, Origin(ORIGIN_PATH, number))
        held = sum((bool(result.events), result.ignored is not None, result.error is not None))
        if held != 1:
            raise Violation(f"line {number}: {held} of events/ignored/error: {result!r}")
        if result.error is not None and result.error.startswith("internal parser error"):
            raise Violation(f"line {number}: {result.error}")
        text = raw.decode("utf-8", "replace")
        for event in result.events:
            check_event(event, text)


def write_seeds(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(SEEDS):
        (directory / f"seed-{number:02d}").write_text(seed + "\n")
    (directory / "seed-session").write_text("\n".join(SEEDS[:5]) + "\n")
    print(f"wrote {len(SEEDS) + 1} seeds to {directory}")


def replay(paths: list[str], check: Callable[[bytes], None]) -> int:
    failures = 0
    for name in paths:
        try:
            check(Path(name).read_bytes())
        except Violation as exc:
            failures += 1
            print(f"{name}: {exc}")
    print(f"replayed {len(paths)} input(s), {failures} violation(s)")
    return 1 if failures else 0


def run(
    argv: list[str],
    check: Callable[[bytes], None],
    missing: Callable[[], str | None] = lambda: None,
) -> int:
    """The command line of a harness: write seeds, replay inputs, or fuzz ``check``.

    ``missing`` says what the harness lacks to run ``check`` (None when nothing).
    """
    if len(argv) > 2 and argv[1] == "--write-seeds":
        write_seeds(Path(argv[2]))
        return 0
    problem = missing()
    if problem is not None:
        print(problem)
        return 2
    if len(argv) > 1 and argv[1] == "--replay":
        return replay(argv[2:], check)
    try:
        import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        print("atheris is not installed: pip install atheris==3.0.0 (see docs/parsers.md)")
        return 2
    atheris.instrument_all()
    atheris.Setup(argv, check)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv, test_one_input))
