"""A message queued before a publisher restart is still delivered under its account."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mailwarden.config import Config, Topics
from parsers.api import LogParser
from streams.correlation_store import CorrelationStore
from tests.integration.publishing import HOST, config_for, publishing
from tests.integration.running import collect, values

pytestmark = pytest.mark.kafka

ACCOUNT = "hijacked@example.org"
QUEUE_ID = "4F2A81C0D3E"

SUBMISSION = [
    "Nov 27 05:10:00 mail postfix/submission/smtpd[4100]: connect from unknown[203.0.113.77]",
    "Nov 27 05:10:00 mail postfix/submission/smtpd[4100]: Anonymous TLS connection established "
    "from unknown[203.0.113.77]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    f"Nov 27 05:10:01 mail postfix/submission/smtpd[4100]: {QUEUE_ID}: "
    f"client=unknown[203.0.113.77], sasl_method=PLAIN, sasl_username={ACCOUNT}",
    f"Nov 27 05:10:01 mail postfix/cleanup[4101]: {QUEUE_ID}: message-id=<spam1@example.org>",
    f"Nov 27 05:10:01 mail postfix/qmgr[4102]: {QUEUE_ID}: from=<{ACCOUNT}>, size=2048, "
    "nrcpt=1 (queue active)",
]
BOUNCED = (
    f"Nov 27 05:40:07 mail postfix/smtp[4103]: {QUEUE_ID}: to=<victim@example.net>, "
    "relay=mx.example.net[198.51.100.25]:25, delay=1806, delays=1800/0/1/5, dsn=5.7.1, "
    "status=bounced (host mx.example.net[198.51.100.25] said: 550 5.7.1 spam (in reply to "
    "end of DATA command))"
)


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def has_kind(kind: str) -> Callable[[list[Any]], bool]:
    return lambda records: any(event["kind"] == kind for event in values(records))


def deliveries(records: list[Any]) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [
        (record.key, event)
        for record, event in zip(records, values(records), strict=True)
        if event["kind"] == "delivery"
    ]


async def publish_submission_then_stop(config: Config, log: Path, bootstrap: str) -> None:
    append(log, *SUBMISSION)
    async with publishing(config, log):
        records = await collect(
            bootstrap, config.topics.events, until=has_kind("queued"), timeout=30
        )
    queued = [e for e in values(records) if e["kind"] == "queued"]
    assert queued[0]["user"] == ACCOUNT


async def test_a_bounce_after_a_restart_names_the_account(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    await publish_submission_then_stop(config, log, kafka_bootstrap)
    snapshots = list((config.state_dir / "tail").glob("correlation-*.snapshot"))
    assert len(snapshots) == 1
    assert ACCOUNT in snapshots[0].read_text()

    append(log, BOUNCED)
    async with publishing(config, log) as publisher:
        records = await collect(
            kafka_bootstrap, unique_topics.events, until=has_kind("delivery"), timeout=30
        )
    ((key, delivery),) = deliveries(records)
    assert key == ACCOUNT.encode()
    assert (delivery["user"], delivery["client_ip"], delivery["status"]) == (
        ACCOUNT,
        "203.0.113.77",
        "bounced",
    )
    assert delivery["sender"] == ACCOUNT
    # the second run read only the new line
    assert publisher.stats.lines == 1


async def test_a_corrupt_snapshot_is_a_warning_and_a_fresh_start(
    tmp_path: Path,
    kafka_bootstrap: str,
    unique_topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = tmp_path / "mail.log"
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    await publish_submission_then_stop(config, log, kafka_bootstrap)
    (snapshot,) = (config.state_dir / "tail").glob("correlation-*.snapshot")
    snapshot.write_bytes(orjson.dumps({"version": 1, "host": HOST})[:-3] + b"\x00garbage")

    append(log, BOUNCED)
    with caplog.at_level(logging.WARNING, logger="streams.correlation_store"):
        async with publishing(config, log):
            records = await collect(
                kafka_bootstrap, unique_topics.events, until=has_kind("delivery"), timeout=30
            )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(snapshot) in w and "not JSON" in w for w in warnings), warnings
    # documented: without the snapshot the account of the bounced message is unknown
    ((key, delivery),) = deliveries(records)
    assert (key, delivery["user"], delivery["client_ip"]) == (None, None, None)
    # the run after it saved a good snapshot again
    assert orjson.loads(snapshot.read_bytes())["version"] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (orjson.dumps({"version": 2, "host": HOST, "queue": {}}), "has version 2"),
        (orjson.dumps({"version": True, "host": HOST, "queue": {}}), "has version True"),
        (orjson.dumps({"version": 1, "host": "other.example", "queue": {}}), "for host"),
        (orjson.dumps([1, 2]), "is not a JSON object"),
        (orjson.dumps({"version": 1, "host": HOST, "queue": [1]}), "is not usable"),
    ],
)
def test_an_unusable_snapshot_file_is_a_warning_naming_it(
    tmp_path: Path, body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = CorrelationStore(tmp_path, HOST)
    store.file.write_bytes(body)
    parser = LogParser(year=2026)
    with caplog.at_level(logging.INFO, logger="streams.correlation_store"):
        assert store.restore_into(parser) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(store.file) in warning and reason in warning
    assert parser.export_correlation()["entries"] == []


def test_a_missing_snapshot_is_a_fresh_start_logged_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CorrelationStore(tmp_path / "tail", HOST)
    with caplog.at_level(logging.INFO, logger="streams.correlation_store"):
        assert store.restore_into(LogParser(year=2026)) == 0
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    store.save(LogParser(year=2026))
    assert orjson.loads(store.file.read_bytes())["queue"] == {"as_of": None, "entries": []}
