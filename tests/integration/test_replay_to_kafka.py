"""`mailwarden replay --to-kafka`: historic logs onto the events topic, in event-time order."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mailwarden.config import Topics
from tests.integration.running import collect, mailwarden, values, write_config

pytestmark = pytest.mark.kafka

POSTFIX = """\
2026-03-03T10:00:02+00:00 mx1 postfix/submission/smtpd[100]: connect from unknown[192.0.2.10]
2026-03-03T10:00:03+00:00 mx1 postfix/submission/smtpd[100]: warning: unknown[192.0.2.10]: \
SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=Alice@Example.org
this line is not a log line
"""
DOVECOT = """\
2026-03-03T10:00:01+00:00 mx1 dovecot: imap-login: Login: user=<bob@example.org>, \
method=PLAIN, rip=198.51.100.7, lip=192.0.2.1, mpid=77, TLS, session=<abc>
"""


async def test_replay_publishes_merged_events_keyed_by_account(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, partitions=4)
    postfix, dovecot = tmp_path / "postfix.log", tmp_path / "dovecot.log"
    postfix.write_text(POSTFIX)
    dovecot.write_text(DOVECOT)
    done = subprocess.run(
        mailwarden("replay", "--to-kafka", "--config", str(config), "--host", "mx1",
                   str(postfix), str(dovecot)),
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 lines unparsed" in done.stderr
    records = await collect(
        kafka_bootstrap, unique_topics.events, until=lambda r: len(r) >= 3, timeout=30
    )
    events = values(records)
    for partition in {r.partition for r in records}:
        stamps = [e["ts"] for r, e in zip(records, events, strict=True) if r.partition == partition]
        assert stamps == sorted(stamps)
    by_kind = {
        (e["kind"], e.get("outcome")): (r.key, e) for r, e in zip(records, events, strict=True)
    }
    key, login = by_kind[("auth", "success")]
    assert key == b"bob@example.org" and login["client_ip"] == "198.51.100.7"
    key, failure = by_kind[("auth", "failure")]
    assert key == b"alice@example.org" and failure["user"] == "Alice@Example.org"
    assert failure["origin"] == {"path": str(postfix), "line": 2, "host": None, "offset": None}
