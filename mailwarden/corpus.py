"""`mailwarden corpus-check`: our parsers against what other projects expect.

The shared corpus (``../shared/corpus``) holds real log lines with the result
fail2ban's and CrowdSec's own test suites assert for each, plus the lab lines
written by a real Postfix and Dovecot with hand-made labels. This module turns
each of those expectations into a check on our events, runs every line through
``parsers.api.LogParser`` (one parser per file, in file order, so correlation
works as it does in production) and reports agreement per source and family.

The test ``tests/unit/test_corpus_acceptance.py`` calls the same functions, so
the command and the test cannot disagree.

Reading an expectation (see docs/parsers.md for the reasoning):

* ``auth_failure``: the other project counts an authentication failure from
  this client. We must emit an ``auth`` or ``auth_echo`` failure with that
  client IP (and that user, where they name one).
* ``activity``: they flag the client for something else (rejects, protocol
  abuse, DDoS). We must emit some event with that client IP; where they say
  positively that it is not an authentication failure, we must not count one.
* ``no_failure``: they expect no failure. We must not count one.

On every line, each event's ``client_ip`` must be null or the expected client:
an IP read from anywhere else (a HELO, a user name, a reason text) is the
injection class of fail2ban's CVE-2013-7176.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import orjson

from models.events import Event, Origin

# Families whose agreement is the acceptance target (issue #3).
ACCEPTANCE_FAMILIES: tuple[str, ...] = ("postfix", "sasl", "dovecot", "pam")
# Families we parse and report on, beyond the acceptance target.
TARGET_FAMILIES: tuple[str, ...] = (*ACCEPTANCE_FAMILIES, "roundcube", "cyrus")
ACCEPTANCE_RATIO = 0.99

# fail2ban's test clock: local time in CET/CEST, "now" = 2005-08-14.
FAIL2BAN_TIMEZONE = "Europe/Berlin"
FAIL2BAN_YEAR = 2005
# CrowdSec's hub tests stamp year-less lines with the current year (2026 in the corpus).
CROWDSEC_YEAR = 2026
LAB_YEAR = 2026

AUTH_KINDS = frozenset({"auth", "auth_echo"})
# Events that describe the client's own SMTP/IMAP/POP3 session (as opposed to
# queue and delivery events, whose protocol and TLS belong to another hop).
CLIENT_SESSION_KINDS = frozenset(
    {"auth", "auth_echo", "connect", "disconnect", "tls", "logout", "kick", "reject", "hold"}
)
SESSION_KINDS = frozenset({"connect", "disconnect", "tls", "logout", "kick", "policy"})

# fail2ban postfix filter modes that flag non-authentication abuse; a line
# matched only by these is, in fail2ban's own terms, not an auth failure.
FAIL2BAN_NON_AUTH_MODES = frozenset({"", "normal", "rbl", "more", "ddos", "errors", "extra"})
# CrowdSec hub tests whose scenario counts Postfix SASL authentication failures.
CROWDSEC_SASL_TESTS = frozenset({"postfix-sasl-bf", "postfix-honeypot-users"})


@dataclass(frozen=True, slots=True)
class Known:
    """A reviewed disagreement: which aspects of the check it covers, and why we are right."""

    aspects: frozenset[str]
    why: str


def _known(why: str, *aspects: str) -> Known:
    return Known(frozenset(aspects), why)


_F2B = "fail2ban/tests/files/logs/"
_TAI64N = _known(
    "daemontools labels are 2^62 + 10 + Unix time (libtai tai_now); tai64nlocal takes the "
    "10 s off and so do we. fail2ban's expectation reads the label as 2^62 + Unix time, "
    "10 s late.",
    "time",
)
_PLAINTEXT_REFUSED = _known(
    "Dovecot refused the command before any password was checked (disable_plaintext_auth or "
    "a disallowed mechanism): no credential was tried, so no attempt is counted. We still "
    "emit a protocol_error event with the client IP, which abuse rules can use; counting it "
    "as a failed login would lock out users whose client is merely misconfigured.",
    "failure",
)
_AUTH_SERVER_LOST = _known(
    "The client sent credentials and got 535; Postfix only adds that Dovecot answered later "
    "than it waited. In the lab (S13) this is exactly what a brute force against Dovecot's "
    "auth penalty produces, so it is a failed attempt. The event keeps the reason, so a rule "
    "can discount failures during an auth-server outage.",
    "counted",
)

# (source, file, lineno) -> why the other project is wrong and we are right.
# Add an entry only after reading the line and deciding so; never to hide a
# parser bug. The acceptance test fails on entries that no longer disagree, and
# an entry covers only the aspects it names: any other problem stays open.
KNOWN_DISAGREEMENTS: dict[tuple[str, str, int], Known] = {
    ("fail2ban", _F2B + "dovecot", 2): _TAI64N,
    ("fail2ban", _F2B + "dovecot", 5): _TAI64N,
    ("fail2ban", _F2B + "dovecot", 8): _TAI64N,
    ("fail2ban", _F2B + "dovecot", 10): _TAI64N,
    ("fail2ban", _F2B + "dovecot", 13): _PLAINTEXT_REFUSED,
    ("fail2ban", _F2B + "dovecot", 16): _PLAINTEXT_REFUSED,
    ("fail2ban", _F2B + "dovecot", 115): _PLAINTEXT_REFUSED,
    ("fail2ban", _F2B + "dovecot", 148): _PLAINTEXT_REFUSED,
    ("fail2ban", _F2B + "postfix", 142): _AUTH_SERVER_LOST,
}


class Verdict(StrEnum):
    AUTH_FAILURE = "auth_failure"
    ACTIVITY = "activity"
    NO_FAILURE = "no_failure"
    UNJUDGED = "unjudged"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the other project asserts for one line, in our terms."""

    verdict: Verdict
    why: str
    ip: str | None = None
    host: str | None = None  # offender named by host name: never resolved, never a client_ip
    user: str | None = None
    kind: str | None = None
    forbid_counted_failure: bool = False
    local_time: datetime | None = None  # naive wall clock in the source's test time zone

    def describe(self) -> str:
        parts = [self.verdict.value]
        if self.ip or self.host:
            parts.append(f"from {self.ip or self.host}")
        if self.user is not None:
            parts.append(f"user={self.user!r}")
        if self.kind:
            parts.append(f"kind={self.kind}")
        if self.forbid_counted_failure:
            parts.append("(not an auth failure)")
        return " ".join(parts) + f" [{self.why}]"


@dataclass(frozen=True, slots=True)
class CorpusLine:
    source: str
    file: str
    lineno: int
    line: str
    family: str
    expect: Expectation

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.source, self.file, self.lineno)

    @property
    def label(self) -> str:
        return f"{self.source} {self.file.rsplit('/', 1)[-1]}:{self.lineno}"


@dataclass(frozen=True, slots=True)
class LineResult:
    """What our parser made of one line; ``raised`` when feed() broke its promise."""

    events: list[Event]
    ignored: str | None
    error: str | None
    raised: str | None = None

    def summary(self) -> str:
        if self.raised:
            return f"feed() raised {self.raised}"
        if self.error is not None:
            return f"error {self.error!r}"
        if not self.events:
            return f"ignored {self.ignored!r}"
        return "; ".join(describe_event(event) for event in self.events)


def describe_event(event: Event) -> str:
    shown = [event.kind]
    if event.outcome:
        shown.append(event.outcome)
    for name in ("user", "client_ip", "protocol", "tls", "status", "attempts"):
        value = getattr(event, name)
        if value is not None:
            shown.append(f"{name}={value!r}" if name == "user" else f"{name}={value}")
    return " ".join(shown)


@dataclass(frozen=True, slots=True)
class Problem:
    """One way our events differ from the expectation.

    ``aspect`` is one of: shape (the ParseResult contract), client_ip, failure
    (an expected auth failure is missing), counted (an auth failure is counted
    where none is expected), user, kind, activity (no event for the client), time.
    """

    aspect: str
    text: str


@dataclass(frozen=True, slots=True)
class Judgement:
    item: CorpusLine
    result: LineResult
    problems: tuple[Problem, ...]
    known: Known | None

    @property
    def status(self) -> str:
        if self.item.expect.verdict is Verdict.UNJUDGED:
            return "unjudged"
        if not self.problems:
            return "agree"
        if self.known and all(p.aspect in self.known.aspects for p in self.problems):
            return "known"
        return "open"


@dataclass(slots=True)
class Tally:
    source: str
    family: str
    lines: int = 0
    judged: int = 0
    expected_failures: int = 0
    agreed: int = 0
    known: int = 0
    open: int = 0

    @property
    def agreement(self) -> float:
        """Agreed plus reviewed disagreements, over judged lines."""
        return (self.agreed + self.known) / self.judged if self.judged else 1.0

    def add(self, judgement: Judgement) -> None:
        self.lines += 1
        status = judgement.status
        if status == "unjudged":
            return
        self.judged += 1
        if judgement.item.expect.verdict is Verdict.AUTH_FAILURE:
            self.expected_failures += 1
        if status == "agree":
            self.agreed += 1
        elif status == "known":
            self.known += 1
        else:
            self.open += 1


# --------------------------------------------------------------------------
# The parser seam


ParserFactory = Callable[[str, int | None], Any]


def default_parser_factory(timezone: str, year: int | None) -> Any:
    """A fresh ``LogParser``; imported late so the CLI can say clearly when it is missing."""
    from parsers.api import LogParser

    return LogParser(host=None, timezone=timezone, year=year)


def feed_line(parser: Any, raw: str, origin: Origin) -> LineResult:
    try:
        result = parser.feed(raw, origin)
    except Exception as exc:  # the contract says feed never raises; report, do not crash
        return LineResult([], None, None, raised=f"{type(exc).__name__}: {exc}")
    return LineResult(list(result.events), result.ignored, result.error)


def parse_in_file_order(
    items: Sequence[CorpusLine], make_parser: ParserFactory, timezone: str, year: int | None
) -> dict[tuple[str, str, int], LineResult]:
    """One parser per (source, file), lines in file order, as a host would log them."""
    by_file: dict[tuple[str, str], list[CorpusLine]] = defaultdict(list)
    for item in items:
        by_file[(item.source, item.file)].append(item)
    results: dict[tuple[str, str, int], LineResult] = {}
    for (_, file), lines in by_file.items():
        parser = make_parser(timezone, year)
        for item in sorted(lines, key=lambda it: it.lineno):
            results[item.key] = feed_line(parser, item.line, Origin(path=file, line=item.lineno))
    return results


# --------------------------------------------------------------------------
# Reading the corpus


def is_ip(text: str | None) -> bool:
    if not text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise click.ClickException(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    return rows


def fail2ban_modes(filter_options: Any) -> list[str]:
    """The filter modes an expectation holds for; "" is the filter's default mode."""
    if filter_options is None:
        return [""]
    options = filter_options if isinstance(filter_options, list) else [filter_options]
    return [str(option.get("mode", "")) for option in options if isinstance(option, dict)]


def fail2ban_family(row: dict[str, Any], modes: list[str]) -> str:
    name = str(row["file"]).rsplit("/", 1)[-1]
    if name == "roundcube-auth":
        return "roundcube"
    if row["family"] == "postfix" and (
        "auth" in modes or row.get("section") == "Test-cases of postfix-sasl:"
    ):
        return "sasl"
    return str(row["family"])


_FAIL2BAN_TIME = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{2}):(\d{2})")


def fail2ban_time(value: Any) -> datetime | None:
    """failJSON's ``time`` (one of them has a one-digit day, so not strict ISO)."""
    match = _FAIL2BAN_TIME.fullmatch(str(value)) if value else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, second)


def fail2ban_expectation(row: dict[str, Any], modes: list[str]) -> Expectation:
    expect = row.get("expect") or {}
    filter_name = str(row["file"]).rsplit("/", 1)[-1]
    why = f"fail2ban {filter_name}" + (
        "[" + ",".join(m or "default" for m in modes) + "]" if modes != [""] else ""
    )
    host = expect.get("host")
    ip, hostname = (host, None) if is_ip(host) else (None, host)
    local_time = fail2ban_time(expect.get("time"))
    if not expect.get("match"):
        # A miss recorded for one narrow mode (e.g. "errors") says nothing about the
        # line; a miss in the default, auth or aggressive mode says "no failure".
        if not {"", "auth", "aggressive"} & set(modes):
            return Expectation(Verdict.UNJUDGED, why + " mode-specific miss")
        return Expectation(
            Verdict.NO_FAILURE, why + " match=false", ip=ip, host=hostname, local_time=local_time
        )
    if row["family"] == "postfix" and "auth" not in modes:
        non_auth = bool(set(modes) & FAIL2BAN_NON_AUTH_MODES)
        return Expectation(
            Verdict.ACTIVITY,
            why,
            ip=ip,
            host=hostname,
            forbid_counted_failure=non_auth,
            local_time=local_time,
        )
    if row["family"] == "dovecot" and modes == ["aggressive"]:
        return Expectation(Verdict.ACTIVITY, why, ip=ip, host=hostname, local_time=local_time)
    return Expectation(
        Verdict.AUTH_FAILURE,
        why,
        ip=ip,
        host=hostname,
        user=expect.get("user"),
        local_time=local_time,
    )


def load_fail2ban(path: Path) -> list[CorpusLine]:
    items = []
    for row in read_jsonl(path):
        modes = fail2ban_modes(row.get("filter_options"))
        items.append(
            CorpusLine(
                source="fail2ban",
                file=str(row["file"]),
                lineno=int(row["lineno"]),
                line=str(row["line"]),
                family=fail2ban_family(row, modes),
                expect=fail2ban_expectation(row, modes),
            )
        )
    return items


def crowdsec_family(row: dict[str, Any]) -> str:
    if row["family"] == "postfix" and row.get("test") in CROWDSEC_SASL_TESTS:
        return "sasl"
    return str(row["family"])


def crowdsec_single_source(row: dict[str, Any]) -> str | None:
    """For lines without an event-level assert: the alerting IP, if it is this line's."""
    expect = row.get("expect") or {}
    if expect.get("alert_source"):
        return str(expect["alert_source"])
    sources = {src for alert in row.get("scenarios") or [] for src in alert.get("sources", [])}
    if len(sources) == 1:
        (source,) = sources
        if f"[{source}]" in row["line"] or f"={source}," in row["line"]:
            return str(source)
    return None


def crowdsec_expectation(row: dict[str, Any]) -> Expectation:
    test = str(row.get("test"))
    why = f"crowdsec {test} ({row.get('expect_from') or 'scenario'})"
    expect = row.get("expect") or {}
    meta = expect.get("meta") or {}
    parsed = expect.get("parsed") or {}
    if row.get("test") in CROWDSEC_SASL_TESTS:
        source = crowdsec_single_source(row)
        if source:
            return Expectation(Verdict.AUTH_FAILURE, why, ip=source)
        return Expectation(Verdict.UNJUDGED, why + " no source tied to the line")
    if meta.get("dovecot_login_result") == "auth_failed":
        return Expectation(
            Verdict.AUTH_FAILURE, why, ip=meta.get("source_ip"), user=parsed.get("dovecot_user")
        )
    if meta.get("log_type") == "pam_failed_auth":
        return Expectation(Verdict.AUTH_FAILURE, why, user=meta.get("username"))
    if meta.get("source_ip"):
        positively_not_auth = meta.get("action") == "reject" or meta.get("log_type_enh") in (
            "non-smtp-command",
        )
        return Expectation(
            Verdict.ACTIVITY,
            why,
            ip=meta["source_ip"],
            kind="reject" if meta.get("action") == "reject" else None,
            forbid_counted_failure=positively_not_auth,
        )
    if not expect:
        source = crowdsec_single_source(row)
        if source:
            return Expectation(Verdict.ACTIVITY, why, ip=source)
    return Expectation(Verdict.UNJUDGED, why + " nothing checkable")


def load_crowdsec(path: Path) -> list[CorpusLine]:
    return [
        CorpusLine(
            source="crowdsec",
            file=str(row["file"]),
            lineno=int(row["lineno"]),
            line=str(row["line"]),
            family=crowdsec_family(row),
            expect=crowdsec_expectation(row),
        )
        for row in read_jsonl(path)
    ]


# --------------------------------------------------------------------------
# Judging one corpus line


def counted_failures(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.kind == "auth" and e.outcome == "failure"]


def auth_failures(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.kind in AUTH_KINDS and e.outcome == "failure"]


def result_shape_problems(result: LineResult) -> list[str]:
    """ParseResult's promise: exactly one of events, ignored, error."""
    if result.raised:
        return [f"feed() raised instead of returning an error: {result.raised}"]
    held = sum((bool(result.events), result.ignored is not None, result.error is not None))
    if held != 1:
        return [
            f"ParseResult must hold exactly one of events/ignored/error, holds {held}: "
            f"events={len(result.events)} ignored={result.ignored!r} error={result.error!r}"
        ]
    return []


def wall_clock(event: Event, zone: ZoneInfo) -> tuple[int, int, int, int, int]:
    moment = datetime.fromtimestamp(event.epoch, tz=zone)
    return (moment.month, moment.day, moment.hour, moment.minute, moment.second)


def judge(item: CorpusLine, result: LineResult, zone: ZoneInfo) -> list[Problem]:
    expect = item.expect
    problems = [Problem("shape", text) for text in result_shape_problems(result)]
    if expect.verdict is Verdict.UNJUDGED:
        return problems
    events = result.events
    if expect.ip:
        strays = sorted({e.client_ip for e in events if e.client_ip and e.client_ip != expect.ip})
        if strays:
            text = f"client_ip {', '.join(strays)} is not the client {expect.ip}"
            problems.append(Problem("client_ip", text))
    elif expect.host:
        named = sorted({e.client_ip for e in events if e.client_ip})
        if named:
            text = f"client_ip {', '.join(named)} for a client known only as {expect.host}"
            problems.append(Problem("client_ip", text))
    if expect.verdict is Verdict.AUTH_FAILURE:
        problems += judge_auth_failure(expect, events)
    elif expect.verdict is Verdict.ACTIVITY:
        problems += judge_activity(expect, events)
    elif counted_failures(events):
        problems.append(Problem("counted", "counts an auth failure where none is expected"))
    if expect.local_time is not None and events:
        want = expect.local_time
        wanted = (want.month, want.day, want.hour, want.minute, want.second)
        clocks = sorted({wall_clock(e, zone) for e in events})
        if clocks != [wanted]:
            problems.append(Problem("time", f"local time {clocks} instead of {want.isoformat()}"))
    return problems


def judge_auth_failure(expect: Expectation, events: list[Event]) -> list[Problem]:
    failures = auth_failures(events)
    if not failures:
        return [Problem("failure", "no auth/auth_echo failure event")]
    problems = []
    if expect.ip and not any(e.client_ip == expect.ip for e in failures):
        problems.append(Problem("client_ip", f"no failure with client_ip {expect.ip}"))
    if expect.user is not None and not any(e.user == expect.user for e in failures):
        got = sorted({repr(e.user) for e in failures})
        problems.append(Problem("user", f"user {', '.join(got)} instead of {expect.user!r}"))
    return problems


def judge_activity(expect: Expectation, events: list[Event]) -> list[Problem]:
    problems = []
    if expect.ip and not any(e.client_ip == expect.ip for e in events):
        problems.append(Problem("activity", f"no event with client_ip {expect.ip}"))
    if expect.kind and not any(e.kind == expect.kind for e in events):
        problems.append(Problem("kind", f"no {expect.kind} event"))
    if expect.forbid_counted_failure and counted_failures(events):
        text = "counts an auth failure for a line that is not an authentication"
        problems.append(Problem("counted", text))
    return problems


# --------------------------------------------------------------------------
# The lab: labels of real Postfix/Dovecot lines


@dataclass(frozen=True, slots=True)
class LabLine:
    path: str
    lineno: int
    line: str
    kind: str
    detail: str
    user: str | None
    ip: str | None
    protocol: str | None
    tls: str | bool | None
    source: str
    scenario: str | None
    user_in_line: bool
    ip_in_line: bool

    @property
    def label(self) -> str:
        return f"lab {self.path}:{self.lineno} [{self.detail}]"


@dataclass(frozen=True, slots=True)
class LabRule:
    """What our events must look like for one label detail."""

    kinds: frozenset[str] | None = None  # None: any kind, or ignored
    outcome: str | None = None
    status: str | None = None
    needs_event: bool = False
    user_required: bool = False  # the user is in the line
    user_correlated: bool = False  # the user comes from the queue id's submission
    tls_required: bool = False


AUTH_FAILURE_RULE = LabRule(AUTH_KINDS, outcome="failure", needs_event=True, user_required=True)
SESSION_RULE = LabRule(SESSION_KINDS, needs_event=True)
ANY_EVENT = LabRule(needs_event=True)
HOUSEKEEPING = LabRule()

LAB_RULES: dict[str, LabRule] = {
    "smtp_connect": LabRule(frozenset({"connect"}), needs_event=True),
    "smtp_disconnect": LabRule(frozenset({"disconnect"}), needs_event=True),
    "smtp_disconnect_auth_ok": LabRule(frozenset({"disconnect"}), needs_event=True),
    "smtp_disconnect_auth_failed": LabRule(frozenset({"disconnect"}), needs_event=True),
    "smtp_lost_connection": ANY_EVENT,
    "tls_established": LabRule(frozenset({"tls"}), needs_event=True, tls_required=True),
    "tls_handshake_failed": HOUSEKEEPING,
    "smtp_auth_failed": LabRule(
        AUTH_KINDS, outcome="failure", needs_event=True, user_required=True, tls_required=True
    ),
    # The user is not in these lines (sasl_username=(unavailable)).
    "smtp_auth_failed_authserver_timeout": LabRule(
        AUTH_KINDS, outcome="failure", needs_event=True, tls_required=True
    ),
    "smtp_auth_failed_policy_reject": LabRule(
        AUTH_KINDS, outcome="failure", needs_event=True, user_required=True, tls_required=True
    ),
    # They corroborate a failure logged just before; any event about the client will do.
    "smtp_lost_connection_after_auth": ANY_EVENT,
    "smtp_too_many_errors_after_auth": ANY_EVENT,
    "smtp_message_accepted_sasl": LabRule(
        frozenset({"submission"}), needs_event=True, user_required=True, tls_required=True
    ),
    "local_pickup": LabRule(frozenset({"submission"}), needs_event=True),
    "qmgr_queue_active": LabRule(frozenset({"queued"}), needs_event=True, user_correlated=True),
    "delivery_sent": LabRule(
        frozenset({"delivery"}), status="sent", needs_event=True, user_correlated=True
    ),
    "delivery_deferred": LabRule(
        frozenset({"delivery"}), status="deferred", needs_event=True, user_correlated=True
    ),
    "delivery_bounced": LabRule(
        frozenset({"delivery"}), status="bounced", needs_event=True, user_correlated=True
    ),
    "expired_returned_to_sender": LabRule(
        frozenset({"delivery"}), status="expired", needs_event=True, user_correlated=True
    ),
    "submission_rejected:relay_denied": LabRule(frozenset({"reject"}), needs_event=True),
    "submission_rejected:rcpt_unknown_user": LabRule(frozenset({"reject"}), needs_event=True),
    "submission_rejected:policy_reject": LabRule(frozenset({"reject"}), needs_event=True),
    "submission_rejected:policy_service_unavailable_tempfail": LabRule(
        frozenset({"reject"}), needs_event=True
    ),
    "submission_held:policy_hold": LabRule(frozenset({"reject", "hold"}), needs_event=True),
    "passdb_password_mismatch": AUTH_FAILURE_RULE,
    "passdb_unknown_user": AUTH_FAILURE_RULE,
    "auth_policy_reject": AUTH_FAILURE_RULE,
    "imap_disconnected_auth_failed": AUTH_FAILURE_RULE,
    "pop3_disconnected_auth_failed": AUTH_FAILURE_RULE,
    "imap_login": LabRule(AUTH_KINDS, outcome="success", needs_event=True, user_required=True),
    "pop3_login": LabRule(AUTH_KINDS, outcome="success", needs_event=True, user_required=True),
    "imap_session_end": LabRule(SESSION_KINDS, needs_event=True, user_required=True),
    "pop3_session_end": LabRule(SESSION_KINDS, needs_event=True, user_required=True),
    "imap_session_end_kicked": LabRule(SESSION_KINDS, needs_event=True, user_required=True),
    "pop3_session_end_kicked": LabRule(SESSION_KINDS, needs_event=True, user_required=True),
    "imap_disconnected_no_auth": SESSION_RULE,
    "pop3_disconnected_no_auth": SESSION_RULE,
}

# Summary lines of a Dovecot login process: "(auth failed, N attempts ...)".
_SUMMARY_ATTEMPTS = re.compile(r"\(auth failed, (\d+) attempts")
_DOVECOT_AUTH_FAILURE_DETAILS = frozenset(
    {"passdb_password_mismatch", "passdb_unknown_user", "auth_policy_reject"}
)
_LOGIN_PROCESS_DETAILS = frozenset(
    {
        "imap_login",
        "pop3_login",
        "imap_disconnected_auth_failed",
        "pop3_disconnected_auth_failed",
    }
)


def load_lab(lab_dir: Path) -> list[LabLine]:
    """Labels in file order, each tied to its file and line number (checked verbatim)."""
    labels = read_jsonl(lab_dir / "events.jsonl")
    files = {
        "postfix": (lab_dir / "postfix.log").read_text().splitlines(),
        "dovecot": (lab_dir / "dovecot.log").read_text().splitlines(),
    }
    next_line = {"postfix": 0, "dovecot": 0}
    out = []
    for row in labels:
        source = str(row["source"])
        index = next_line[source]
        next_line[source] += 1
        text = files[source][index]
        if text != row["line"]:
            raise click.ClickException(
                f"lab label out of step with {source}.log line {index + 1}: {row['line']!r}"
            )
        out.append(
            LabLine(
                path=f"{source}.log",
                lineno=index + 1,
                line=text,
                kind=str(row["kind"]),
                detail=str(row["detail"]),
                user=row.get("user"),
                ip=row.get("ip"),
                protocol=row.get("protocol"),
                tls=row.get("tls"),
                source=source,
                scenario=row.get("scenario"),
                user_in_line=bool(row.get("user_in_line")),
                ip_in_line=bool(row.get("ip_in_line")),
            )
        )
    return out


def parse_lab(
    lines: Sequence[LabLine], make_parser: ParserFactory
) -> dict[tuple[str, int], LineResult]:
    """Both files through one parser (one host), merged by time as a collector would."""
    syslog_time = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) ")
    months = "JanFebMarAprMayJunJulAugSepOctNovDec"

    def when(item: LabLine) -> tuple[int, ...]:
        match = syslog_time.match(item.line)
        if match is None:
            raise click.ClickException(f"lab line without a syslog time: {item.label}")
        month = months.index(match.group(1)) // 3
        return (month, *(int(g) for g in match.groups()[1:]))

    parser = make_parser("UTC", LAB_YEAR)
    ordered = sorted(lines, key=lambda item: (when(item), item.path != "dovecot.log"))
    return {
        (item.path, item.lineno): feed_line(parser, item.line, Origin(item.path, item.lineno))
        for item in ordered
    }


def expected_tls(label: LabLine) -> str | None:
    if label.tls is False:
        return "none"
    return label.tls if isinstance(label.tls, str) else None


def judge_lab_line(label: LabLine, result: LineResult) -> list[str]:
    problems = result_shape_problems(result)
    if result.error is not None:
        problems.append("a real line of a supported version must not be dead-lettered")
    rule = LAB_RULES.get(label.detail, HOUSEKEEPING)
    events = result.events
    if rule.needs_event and not events:
        return [*problems, f"no event ({result.summary()})"]
    if rule.kinds is not None and events:
        matching = [
            e
            for e in events
            if e.kind in rule.kinds
            and (rule.outcome is None or e.outcome == rule.outcome)
            and (rule.status is None or e.status == rule.status)
        ]
        if not matching:
            want = "/".join(sorted(rule.kinds))
            extra = " ".join(x for x in (rule.outcome, rule.status) if x)
            problems.append(f"no {want} {extra}".rstrip() + " event")
    problems += lab_field_problems(label, rule, events)
    return problems


def lab_field_problems(label: LabLine, rule: LabRule, events: list[Event]) -> list[str]:
    problems = []
    if label.ip is not None:
        strays = sorted({e.client_ip for e in events if e.client_ip and e.client_ip != label.ip})
        if strays:
            problems.append(f"client_ip {', '.join(strays)} instead of {label.ip}")
        if (
            rule.needs_event
            and label.ip_in_line
            and not any(e.client_ip == label.ip for e in events)
        ):
            problems.append(f"no event with client_ip {label.ip}")
    for event in events:
        if event.user == "":
            problems.append(f"{event.kind}: empty user must be null")
        elif event.user is not None and event.user != label.user:
            problems.append(f"{event.kind}: user {event.user!r} instead of {label.user!r}")
    if rule.user_required and label.user_in_line and not any(e.user == label.user for e in events):
        problems.append(f"no event with user {label.user!r}")
    # A message submitted over SMTP AUTH (the label has a client): its queue and
    # delivery lines must name the account, through the queue id.
    correlated = rule.user_correlated and label.ip is not None and label.user is not None
    if correlated and not any(e.user == label.user for e in events):
        problems.append(f"queue id not correlated to the submitting user {label.user!r}")
    session_events = [e for e in events if e.kind in CLIENT_SESSION_KINDS]
    if label.protocol is not None and label.ip is not None:
        for event in session_events:
            if event.protocol is not None and event.protocol != label.protocol:
                problems.append(
                    f"{event.kind}: protocol {event.protocol} instead of {label.protocol}"
                )
        derivable = label.detail in _LOGIN_PROCESS_DETAILS or label.source == "postfix"
        if (
            derivable
            and session_events
            and not any(e.protocol == label.protocol for e in session_events)
        ):
            problems.append(f"no event with protocol {label.protocol}")
    problems += lab_tls_problems(label, rule, session_events)
    return problems


def lab_tls_problems(label: LabLine, rule: LabRule, session_events: list[Event]) -> list[str]:
    want = expected_tls(label)
    if want is None:
        return []
    problems = []
    for event in session_events:
        got = event.tls
        if got is None:
            continue
        if want == "none" and got != "none":
            problems.append(f"{event.kind}: tls {got} on a plaintext session")
        elif want != "none" and (
            got == "none" or (got.startswith(("TLSv", "SSLv")) and got != want)
        ):
            problems.append(f"{event.kind}: tls {got} instead of {want}")
    # Exact when the line states it, or when smtpd session correlation promises it,
    # or when a Dovecot login line shows no TLS marker (plaintext).
    stated = label.detail == "tls_established" or f"{want} with cipher" in label.line
    plaintext_login = want == "none" and label.detail in _LOGIN_PROCESS_DETAILS
    exact = rule.tls_required or stated or plaintext_login
    if exact and session_events and not any(e.tls == want for e in session_events):
        got_all = sorted({str(e.tls) for e in session_events})
        problems.append(f"tls {', '.join(got_all)} instead of {want}")
    return problems


@dataclass(frozen=True, slots=True)
class AttemptCount:
    """Failed attempts of one lab client, counted by the truth and by our `auth` events."""

    scenario: str
    ip: str
    protocol: str
    expected: int
    counted: int


def lab_attempt_counts(
    lines: Sequence[LabLine], results: dict[tuple[str, int], LineResult]
) -> list[AttemptCount]:
    """Each failed attempt counted exactly once, however many daemons logged it.

    The truth per client is the largest of: Postfix SASL failure lines, Dovecot
    auth-process failure lines, and the attempts Dovecot's login summaries
    report. Ours is the sum over every line of that client (whatever its label)
    of counted `auth` failures, weighted by `attempts`.
    """
    postfix_lines: Counter[tuple[str, str, str]] = Counter()
    auth_lines: Counter[tuple[str, str, str]] = Counter()
    summaries: Counter[tuple[str, str, str]] = Counter()
    counted: Counter[tuple[str, str, str]] = Counter()
    for label in lines:
        if label.scenario is None or label.ip is None or label.protocol is None:
            continue
        group = (label.scenario, label.ip, label.protocol)
        if label.detail.startswith("smtp_auth_failed"):
            postfix_lines[group] += 1
        elif label.detail in _DOVECOT_AUTH_FAILURE_DETAILS:
            auth_lines[group] += 1
        elif label.detail.endswith("_disconnected_auth_failed"):
            match = _SUMMARY_ATTEMPTS.search(label.line)
            summaries[group] += int(match.group(1)) if match else 1
        result = results[(label.path, label.lineno)]
        counted[group] += sum(e.attempts or 1 for e in counted_failures(result.events))
    groups = set(postfix_lines) | set(auth_lines) | set(summaries) | set(counted)
    return [
        AttemptCount(
            scenario=group[0],
            ip=group[1],
            protocol=group[2],
            expected=max(postfix_lines[group], auth_lines[group], summaries[group]),
            counted=counted[group],
        )
        for group in sorted(groups)
    ]


@dataclass(frozen=True, slots=True)
class LabJudgement:
    label: LabLine
    result: LineResult
    problems: tuple[str, ...]


@dataclass(slots=True)
class LabReport:
    judgements: list[LabJudgement]
    attempts: list[AttemptCount]

    def tally(self, family: str) -> tuple[int, int]:
        rows = [j for j in self.judgements if j.label.source == family]
        return len(rows), sum(1 for j in rows if not j.problems)

    @property
    def failed(self) -> list[LabJudgement]:
        return [j for j in self.judgements if j.problems]

    @property
    def miscounted(self) -> list[AttemptCount]:
        return [a for a in self.attempts if a.expected != a.counted]


def check_lab(
    lab_dir: Path,
    make_parser: ParserFactory = default_parser_factory,
    families: Sequence[str] | None = None,
) -> LabReport:
    lines = load_lab(lab_dir)
    results = parse_lab(lines, make_parser)
    judgements = []
    for label in lines:
        if families is not None and label.source not in families:
            continue
        result = results[(label.path, label.lineno)]
        judgements.append(LabJudgement(label, result, tuple(judge_lab_line(label, result))))
    return LabReport(judgements, lab_attempt_counts(lines, results))


# --------------------------------------------------------------------------
# The whole corpus


@dataclass(slots=True)
class CorpusReport:
    judgements: list[Judgement] = field(default_factory=list)

    def tallies(self) -> list[Tally]:
        tallies: dict[tuple[str, str], Tally] = {}
        for judgement in self.judgements:
            key = (judgement.item.source, judgement.item.family)
            tallies.setdefault(key, Tally(*key)).add(judgement)
        return [tallies[key] for key in sorted(tallies, key=_family_order)]

    def family_tally(self, family: str) -> Tally:
        """All sources together, for one family."""
        total = Tally("all", family)
        for judgement in self.judgements:
            if judgement.item.family == family:
                total.add(judgement)
        return total

    def disagreements(self) -> list[Judgement]:
        return [j for j in self.judgements if j.status in ("open", "known")]


def _family_order(key: tuple[str, str]) -> tuple[int, str, str]:
    source, family = key
    rank = TARGET_FAMILIES.index(family) if family in TARGET_FAMILIES else len(TARGET_FAMILIES)
    return (rank, family, source)


def check_corpus(
    corpus_dir: Path,
    make_parser: ParserFactory = default_parser_factory,
    families: Sequence[str] | None = None,
) -> CorpusReport:
    zone = ZoneInfo(FAIL2BAN_TIMEZONE)
    report = CorpusReport()
    for items, timezone, year in (
        (load_fail2ban(corpus_dir / "fail2ban.jsonl"), FAIL2BAN_TIMEZONE, FAIL2BAN_YEAR),
        (load_crowdsec(corpus_dir / "crowdsec.jsonl"), "UTC", CROWDSEC_YEAR),
    ):
        results = parse_in_file_order(items, make_parser, timezone, year)
        source_zone = zone if timezone == FAIL2BAN_TIMEZONE else ZoneInfo("UTC")
        for item in items:
            if families is not None and item.family not in families:
                continue
            result = results[item.key]
            problems = tuple(judge(item, result, source_zone))
            report.judgements.append(
                Judgement(item, result, problems, KNOWN_DISAGREEMENTS.get(item.key))
            )
    return report


# --------------------------------------------------------------------------
# Output


def render_tables(report: CorpusReport, lab: LabReport | None) -> str:
    out = []
    header = (
        f"{'source':<9} {'family':<11} {'lines':>5} {'judged':>6} {'exp-fail':>8} "
        f"{'agreed':>6} {'known':>5} {'open':>4} {'agreement':>9}"
    )
    targeted = [t for t in report.tallies() if t.family in TARGET_FAMILIES]
    others = [t for t in report.tallies() if t.family not in TARGET_FAMILIES]
    out.append("Targeted families (acceptance: >= 99% on " + ", ".join(ACCEPTANCE_FAMILIES) + ")")
    out.append(header)
    for tally in targeted:
        out.append(_tally_row(tally))
    for family in TARGET_FAMILIES:
        total = report.family_tally(family)
        if total.lines:
            out.append(_tally_row(total))
    if others:
        out.append("")
        out.append("Families we do not target (reported, not counted)")
        out.append(header)
        out.extend(_tally_row(t) for t in others)
    if lab is not None:
        out.append("")
        out.append("Lab labels (acceptance: 100%)")
        for family in ("postfix", "dovecot"):
            lines, agreed = lab.tally(family)
            if lines:
                out.append(
                    f"lab {family:<8} {lines:>5} lines  {agreed:>5} agree  {_pct(agreed, lines)}"
                )
        exact = sum(1 for a in lab.attempts if a.expected == a.counted)
        out.append(
            f"lab attempts {len(lab.attempts):>3} clients {exact:>5} counted exactly once  "
            f"{_pct(exact, len(lab.attempts))}"
        )
    return "\n".join(out)


def _tally_row(t: Tally) -> str:
    return (
        f"{t.source:<9} {t.family:<11} {t.lines:>5} {t.judged:>6} {t.expected_failures:>8} "
        f"{t.agreed:>6} {t.known:>5} {t.open:>4} {_pct(t.agreed + t.known, t.judged):>9}"
    )


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def render_judgement(judgement: Judgement) -> str:
    item = judgement.item
    lines = [
        f"{judgement.status.upper():<8} {item.label} [{item.family}]",
        f"  line:     {item.line[:300]}",
        f"  expected: {item.expect.describe()}",
        f"  got:      {judgement.result.summary()}",
    ]
    lines += [f"  problem:  [{p.aspect}] {p.text}" for p in judgement.problems]
    if judgement.known:
        covers = ", ".join(sorted(judgement.known.aspects))
        lines.append(f"  reviewed ({covers}): {judgement.known.why}")
    return "\n".join(lines)


def render_lab_judgement(judgement: LabJudgement) -> str:
    label = judgement.label
    lines = [
        f"{'OPEN' if judgement.problems else 'AGREE':<8} {label.label}",
        f"  line:     {label.line[:300]}",
        f"  label:    kind={label.kind} user={label.user!r} ip={label.ip} "
        f"protocol={label.protocol} tls={label.tls}",
        f"  got:      {judgement.result.summary()}",
    ]
    lines += [f"  problem:  {problem}" for problem in judgement.problems]
    return "\n".join(lines)


def acceptance_failures(
    report: CorpusReport, lab: LabReport | None, families: Sequence[str]
) -> list[str]:
    failures = []
    for family in ACCEPTANCE_FAMILIES:
        if family not in families:
            continue
        total = report.family_tally(family)
        if total.agreement < ACCEPTANCE_RATIO:
            failures.append(f"{family}: {_pct(total.agreed + total.known, total.judged)} agreement")
    if lab is not None:
        if lab.failed:
            failures.append(f"lab: {len(lab.failed)} line(s) disagree with their labels")
        if lab.miscounted:
            failures.append(f"lab: {len(lab.miscounted)} client(s) with miscounted attempts")
    return failures


@click.command("corpus-check")
@click.option(
    "--corpus",
    "corpus_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(__file__).resolve().parent.parent.parent / "shared" / "corpus",
    show_default=True,
    help="The shared corpus directory (fail2ban.jsonl, crowdsec.jsonl, lab/).",
)
@click.option(
    "--family",
    "families",
    multiple=True,
    help="Only this family (postfix, sasl, dovecot, pam, roundcube, exim, ...); repeatable.",
)
@click.option(
    "--show",
    type=click.Choice(["disagreements", "all", "none"]),
    default="disagreements",
    show_default=True,
    help="Which lines to list after the tables.",
)
def corpus_check(corpus_dir: Path, families: tuple[str, ...], show: str) -> None:
    """Compare our parsers with fail2ban's and CrowdSec's expectations and the lab labels.

    Exits 1 when an acceptance family is below 99% agreement or a lab label
    is not met, 2 when the corpus is missing.
    """
    if not (corpus_dir / "fail2ban.jsonl").is_file():
        click.echo(f"corpus not found: {corpus_dir}/fail2ban.jsonl", err=True)
        sys.exit(2)
    try:
        default_parser_factory("UTC", None)
    except ImportError as exc:
        raise click.ClickException(f"parsers.api.LogParser is not available: {exc}") from exc
    selected = list(families) if families else None
    report = check_corpus(corpus_dir, families=selected)
    lab_dir = corpus_dir / "lab"
    lab = check_lab(lab_dir, families=selected) if (lab_dir / "events.jsonl").is_file() else None
    click.echo(render_tables(report, lab))
    if show != "none":
        listed = report.judgements if show == "all" else report.disagreements()
        if selected is None and show == "disagreements":
            # untargeted families are listed when asked for with --family
            listed = [j for j in listed if j.item.family in TARGET_FAMILIES]
        for judgement in listed:
            click.echo("")
            click.echo(render_judgement(judgement))
        if lab is not None:
            lab_listed = lab.judgements if show == "all" else lab.failed
            for lab_judgement in lab_listed:
                click.echo("")
                click.echo(render_lab_judgement(lab_judgement))
            for count in lab.miscounted:
                click.echo("")
                click.echo(
                    f"MISCOUNT lab {count.scenario} {count.ip} {count.protocol}: "
                    f"{count.expected} failed attempt(s), we count {count.counted}"
                )
    failures = acceptance_failures(report, lab, selected or ACCEPTANCE_FAMILIES)
    if failures:
        click.echo("\nacceptance not met: " + "; ".join(failures), err=True)
        sys.exit(1)
