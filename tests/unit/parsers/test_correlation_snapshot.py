"""The queue map outlives a restart: export, import into a new parser, same later events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from models.events import Event, Origin
from parsers.api import LogParser
from parsers.correlation import HostState

CONNECT = "Mar  3 10:00:00 mx postfix/submission/smtpd[7]: connect from unknown[198.51.100.3]"
TLS = (
    "Mar  3 10:00:00 mx postfix/submission/smtpd[7]: Anonymous TLS connection established "
    "from unknown[198.51.100.3]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
)
CLIENT = (
    "Mar  3 10:00:01 mx postfix/submission/smtpd[7]: ABCDE12345: client=unknown[198.51.100.3], "
    "sasl_method=PLAIN, sasl_username=olivia@example.com"
)
CLEANUP = "Mar  3 10:00:01 mx postfix/cleanup[9]: ABCDE12345: message-id=<m1@example.com>"
QMGR = (
    "Mar  3 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<olivia@example.com>, size=10, nrcpt=1 "
    "(queue active)"
)
DEFERRED = (
    "Mar  3 10:00:03 mx postfix/smtp[8]: ABCDE12345: to=<x@example.net>, relay=none, delay=2, "
    "delays=1/0/1/0, dsn=4.4.1, status=deferred (connect to example.net[203.0.113.1]:25: "
    "Connection timed out)"
)
RETRY = (
    "Mar  3 10:30:01 mx postfix/qmgr[2]: ABCDE12345: from=<olivia@example.com>, size=10, nrcpt=1 "
    "(queue active)"
)
BOUNCED = (
    "Mar  3 10:30:02 mx postfix/smtp[8]: ABCDE12345: to=<x@example.net>, relay=mx.example.net"
    "[203.0.113.2]:25, delay=1800, delays=1/0/1/1, dsn=5.7.1, status=bounced (host "
    "mx.example.net[203.0.113.2] said: 550 5.7.1 rejected (in reply to end of DATA command))"
)
BOUNCE_NOTICE = (
    "Mar  3 10:30:02 mx postfix/bounce[10]: ABCDE12345: sender non-delivery notification: "
    "FEDCB54321"
)
SUBMISSION = [CONNECT, TLS, CLIENT, CLEANUP, QMGR]


def feed(parser: LogParser, lines: list[str], first: int = 1) -> list[Event]:
    events: list[Event] = []
    for n, line in enumerate(lines, first):
        events.extend(parser.feed(line, Origin("mail.log", n, host="mx")).events)
    return events


def encoded(events: list[Event]) -> list[bytes]:
    return [event.to_json() for event in events]


def queue_ids(snapshot: dict[str, object]) -> list[str]:
    entries = snapshot["entries"]
    assert isinstance(entries, list)
    return [row[0] for row in entries]


def restarted(snapshot: object) -> LogParser:
    """A new parser given a snapshot that went through JSON, as the publisher stores it."""
    parser = LogParser(year=2026)
    report = parser.import_correlation(orjson.loads(orjson.dumps(snapshot)))
    assert report.skipped == 0 and report.unusable is None
    return parser


def test_later_events_are_byte_identical_to_a_parser_that_never_restarted() -> None:
    later = [DEFERRED, RETRY, BOUNCED, BOUNCE_NOTICE]
    steady = LogParser(year=2026)
    feed(steady, SUBMISSION)
    expected = feed(steady, later, first=6)

    first = LogParser(year=2026)
    feed(first, SUBMISSION)
    again = restarted(first.export_correlation())
    events = feed(again, later, first=6)

    assert encoded(events) == encoded(expected)
    delivery = events[0]
    assert (delivery.kind, delivery.user, delivery.client_ip) == (
        "delivery",
        "olivia@example.com",
        "198.51.100.3",
    )
    assert events[1].detail == "queue active again (retry)"
    assert [e.status for e in events if e.kind == "delivery"] == ["deferred", "bounced"]


def test_without_the_snapshot_the_bounce_has_no_account() -> None:
    """What the snapshot fixes: a fresh parser cannot name the account."""
    events = feed(LogParser(year=2026), [BOUNCED], first=6)
    assert events[0].user is None


def test_lines_read_again_after_import_give_the_events_of_the_first_time() -> None:
    """The snapshot can be ahead of the checkpoint: the lines in between come again."""
    session = [CONNECT, TLS, CLIENT, QMGR]
    first = LogParser(year=2026)
    original = feed(first, session)
    again = restarted(first.export_correlation())
    reread = feed(again, session)
    assert encoded(reread) == encoded(original)
    assert [e.kind for e in reread][-3:] == ["auth", "submission", "queued"]
    assert reread[-1].detail is None  # the same activation, not a retry
    assert encoded(feed(again, [DEFERRED], 6)) == encoded(feed(first, [DEFERRED], 6))


def test_rereading_the_client_line_changes_nothing() -> None:
    first = LogParser(year=2026)
    feed(first, SUBMISSION)
    snapshot = first.export_correlation()
    again = restarted(snapshot)
    # without its session (not restored) the line alone would lose the TLS version
    feed(again, [CLIENT, QMGR], first=3)
    assert again.export_correlation() == snapshot


def test_a_retry_after_the_restart_is_still_a_retry() -> None:
    first = LogParser(year=2026)
    feed(first, SUBMISSION)
    again = restarted(first.export_correlation())
    (queued,) = feed(again, [RETRY], 6)
    assert (queued.kind, queued.detail, queued.user) == (
        "queued",
        "queue active again (retry)",
        "olivia@example.com",
    )


def test_expiry_by_event_time_applies_after_import() -> None:
    first = LogParser(year=2026)
    feed(first, SUBMISSION)
    again = restarted(first.export_correlation())
    week_later = BOUNCED.replace("Mar  3 10:30:02", "Mar 10 10:30:02")
    (delivery,) = feed(again, [week_later], 6)
    assert delivery.user is None


def test_entries_past_the_expiry_of_the_snapshot_are_dropped() -> None:
    state = HostState()
    snapshot: dict[str, Any] = {
        "as_of": 10 * 86400.0,
        "entries": [
            ["ABCDE12345", 0.0, "old@x", None, None, "smtp", None, None, None, True],
            ["BCDEF23456", 9 * 86400.0, "new@x", None, None, "smtp", None, None, None, False],
        ],
    }
    report = state.import_queue(snapshot)
    assert (report.restored, report.dropped, report.skipped) == (1, 1, 0)
    assert queue_ids(state.export_queue()) == ["BCDEF23456"]


GOOD = ["ABCDE12345", 100.0, "a@x", "192.0.2.1", "TLSv1.3", "smtp", "a@x", None, None, False]


@pytest.mark.parametrize(
    "row",
    [
        GOOD[:9],  # a field missing
        [*GOOD, "extra"],
        {"queue_id": "ABCDE12345"},
        "ABCDE12345",
        None,
        ["../../etc", *GOOD[1:]],  # not a queue id
        ["ABCDE12345", "100", *GOOD[2:]],  # time as text
        ["ABCDE12345", True, *GOOD[2:]],
        ["ABCDE12345", float("nan"), *GOOD[2:]],
        ["ABCDE12345", 100.0, 42, *GOOD[3:]],  # user a number
        ["ABCDE12345", 100.0, ["a@x"], *GOOD[3:]],
        ["ABCDE12345", 100.0, "x" * 70_000, *GOOD[3:]],
        [*GOOD[:9], "yes"],  # queued_before not a bool
    ],
)
def test_malformed_entries_are_skipped_and_counted(row: object) -> None:
    state = HostState()
    report = state.import_queue({"as_of": 100.0, "entries": [row, GOOD]})
    assert (report.restored, report.skipped, report.unusable) == (1, 1, None)
    message = state.queue.get("ABCDE12345", 100.0)
    assert message is not None and message.user == "a@x"


@pytest.mark.parametrize(
    "snapshot", [None, [], "text", 42, {"entries": "no"}, {"as_of": 1.0}, {"entries": None}]
)
def test_a_snapshot_that_is_not_one_is_refused_without_raising(snapshot: object) -> None:
    state = HostState()
    report = state.import_queue(snapshot)
    assert report.unusable is not None
    assert report.restored == 0 and len(state.queue) == 0


def test_a_huge_list_keeps_only_the_youngest_entries_within_the_bound() -> None:
    state = HostState()
    bound = state.queue.max_size
    rows = [
        [f"Q{n:010d}", float(n), None, None, None, None, None, None, None, False]
        for n in range(bound + 500)
    ]
    report = state.import_queue({"as_of": float(bound + 500), "entries": rows})
    assert (report.restored, report.dropped) == (bound, 500)
    assert len(state.queue) == bound
    assert state.queue.get(f"Q{bound + 499:010d}", float(bound + 500)) is not None
    assert state.queue.get("Q0000000000", float(bound + 500)) is None


def test_export_keeps_the_least_recently_used_order() -> None:
    parser = LogParser(year=2026)
    feed(parser, [CLIENT, CLIENT.replace("ABCDE12345", "BCDEF23456")])
    feed(parser, [QMGR.replace("10:00:01", "10:00:02")])
    order = queue_ids(parser.export_correlation())
    assert order == ["ABCDE12345", "BCDEF23456"]
    again = restarted(parser.export_correlation())
    assert queue_ids(again.export_correlation()) == order


def test_account_names_are_kept_as_data() -> None:
    hostile = 'x", "as_of": 0, "entries": [] } {"a\\\n\u2028'
    state = HostState()
    report = state.import_queue(
        {"as_of": 1.0, "entries": [["ABCDE12345", 1.0, hostile, *GOOD[3:]]]}
    )
    assert report.restored == 1
    back = HostState()
    back.import_queue(orjson.loads(orjson.dumps(state.export_queue())))
    message = back.queue.get("ABCDE12345", 1.0)
    assert message is not None and message.user == hostile
