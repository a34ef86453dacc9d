"""pam_unix's ``ruser=R rhost=H  user=U``: crafted R and U never choose the address,
and reading a line costs time linear in its length (F8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import Event, Origin
from parsers.api import MAX_LINE_BYTES, LogParser
from parsers.auth import pam_rhost_and_user

REAL = "192.0.2.23"
FAKE = "6.6.6.6"
HEAD = "Mar  3 10:00:00 mail {program}: pam_unix({service}:auth): authentication failure; "


def the_failure(line: str) -> Event:
    result = LogParser(year=2026).feed(line, Origin("pam.log", 1))
    assert result.error is None and result.ignored is None, result
    [event] = result.events
    assert (event.kind, event.outcome, event.source) == ("auth", "failure", "pam")
    return event


def dovecot_line(name: str, rhost: str = REAL) -> str:
    """Dovecot sets PAM_RUSER and PAM_USER to the same login name."""
    return HEAD.format(program="auth", service="dovecot") + (
        f"logname= uid=0 euid=0 tty=dovecot ruser={name} rhost={rhost}  user={name}"
    )


def sshd_line(name: str) -> str:
    """sshd sets no PAM_RUSER: only the user field is the client's."""
    return HEAD.format(program="sshd[7]", service="sshd") + (
        f"logname= uid=0 euid=0 tty=ssh ruser= rhost={REAL}  user={name}"
    )


def old_dovecot_line(name: str) -> str:
    """Before Linux-PAM 1.0 there is no user field; the ruser is the client's."""
    return HEAD.format(program="dovecot-auth", service="dovecot") + (
        f"logname= uid=0 euid=0 tty=dovecot ruser={name} rhost={REAL}"
    )


# Names that imitate the fields around them, each making extra readings.
FORGERIES = [
    f"x rhost={FAKE}",
    f"x rhost={FAKE}  user=x",
    f"x rhost={FAKE}  user=",
    f" rhost={FAKE}  user=x",
    f"a rhost={FAKE}  user= rhost={REAL}  user=a",
    f" rhost={FAKE}  user=a rhost={REAL}  user=",
    f"rhost= rhost={FAKE} user= user=x rhost={FAKE}",
    f"x rhost={FAKE}  user=x rhost={FAKE}  user=x",
]


@pytest.mark.parametrize("name", FORGERIES)
def test_dovecot_name_in_ruser_and_user_cannot_move_rhost(name: str) -> None:
    event = the_failure(dovecot_line(name))
    assert (event.client_ip, event.user) == (REAL, name.strip())


@pytest.mark.parametrize("name", FORGERIES)
def test_sshd_name_in_user_cannot_move_rhost(name: str) -> None:
    event = the_failure(sshd_line(name))
    assert (event.client_ip, event.user) == (REAL, name.strip())


@pytest.mark.parametrize("name", FORGERIES)
def test_old_layout_name_in_ruser_cannot_move_rhost(name: str) -> None:
    event = the_failure(old_dovecot_line(name))
    assert (event.client_ip, event.user) == (REAL, name.strip())


def test_the_same_text_reads_by_who_fills_ruser() -> None:
    """This text is a real sshd line for REAL and a real Dovecot line for FAKE."""
    fields = f"ruser= rhost={REAL}  user=a rhost={FAKE}  user= rhost={REAL}  user=a"
    sshd = the_failure(HEAD.format(program="sshd[7]", service="sshd") + fields)
    dovecot = the_failure(HEAD.format(program="auth", service="dovecot") + fields)
    assert sshd.client_ip == REAL
    assert dovecot.client_ip == FAKE
    assert dovecot.user == f"rhost={REAL}  user=a"


def test_empty_rhost_and_hostname_give_no_address() -> None:
    assert the_failure(dovecot_line("x", rhost="")).client_ip is None
    hostname = the_failure(dovecot_line("x", rhost="evil.example.net"))
    assert (hostname.client_ip, hostname.extra) == (None, {"rhost": "evil.example.net"})


NAME_PARTS = st.sampled_from(["x", " ", "rhost=", "user=", "=", FAKE, REAL, "  "])


@given(st.lists(NAME_PARTS, max_size=24).map("".join))
@settings(max_examples=300, deadline=None)
def test_any_dovecot_name_gives_the_real_address(name: str) -> None:
    event = the_failure(dovecot_line(name))
    assert event.client_ip == REAL


@pytest.mark.parametrize("build", [dovecot_line, sshd_line, old_dovecot_line])
def test_a_line_of_the_size_cap_full_of_rhost_parses(build: Callable[[str], str]) -> None:
    """The bench's worst case (loggen "pam-rhost") at the 64 KiB cap, in every layout."""
    name = "rhost= " * ((MAX_LINE_BYTES - 400) // 2 // 7)
    line = build(name)
    assert len(line.encode()) <= MAX_LINE_BYTES
    event = the_failure(line)
    assert event.client_ip == REAL


@pytest.mark.parametrize("service", ["dovecot", "sshd"])
def test_one_megabyte_of_crafted_fields_is_read(service: str) -> None:
    """feed() refuses lines above 64 KiB; the field reader itself must not need the cap."""
    name = f"rhost= user= rhost={FAKE}  user=" * (1_000_000 // 36)
    fields = f"logname= uid=0 euid=0 tty=x ruser={name} rhost={REAL}  user={name}"
    # sshd's ruser is never the client's: a line like this cannot come from it
    expected_ip = REAL if service == "dovecot" else FAKE
    assert pam_rhost_and_user(fields, service)[0] == expected_ip
    result = LogParser(year=2026).feed(dovecot_line(name).encode(), Origin("pam.log", 1))
    assert result.error is not None and result.error.startswith("line too long")
