"""Helpers for the rule tests: build events, run a detector, read CrowdSec-style fixtures.

Plain functions rather than pytest fixtures, so that test modules import them
(``from tests.unit.rules.kit import ...``) with their types.

A fixture is a folder ``tests/fixtures/rules/<rule>/`` holding ``events.jsonl``
(events in), ``expected.jsonl`` (decisions out, in the projection below) and
optionally ``policy.toml``. The projection keeps what a reviewer checks:
commands by action, subject and times; alerts by rule, subject and counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event, iso_utc
from models.policy import Policy, load_policy
from models.rules import Decision

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rules"
SIGNING_KEY = b"test-signing-key"
T0 = 1_795_774_800.0  # 2026-11-27T10:20:00Z, a multiple of every bucket length


def make_event(at: float, kind: str, **fields: Any) -> Event:
    """An event ``at`` seconds after T0 (fields as in models.events.Event)."""
    epoch = T0 + at
    fields.setdefault("host", "mx1")
    fields.setdefault("source", "dovecot" if fields.get("protocol") == "imap" else "postfix")
    return Event(ts=iso_utc(epoch), epoch=epoch, kind=kind, **fields)


def project(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, Command):
        return {
            "type": "command",
            "action": decision.action,
            "subject_type": decision.subject_type,
            "subject": decision.subject,
            "rule": decision.rule,
            "issued_at": decision.issued_at,
            "expires_at": decision.expires_at,
            "dry_run": decision.dry_run,
        }
    assert isinstance(decision, Alert)
    doc = decision.to_dict()
    evidence = doc["mailwarden"]
    projected: dict[str, Any] = {
        "type": "alert",
        "rule": doc["rule"]["name"],
        "at": doc["@timestamp"],
        "user": doc.get("user", {}).get("name"),
        "source_ip": doc.get("source", {}).get("ip"),
        "counts": evidence.get("counts"),
        "distinct": {name: value["count"] for name, value in evidence.get("distinct", {}).items()},
        "commands": len(evidence["commands"]),
        "dry_run": evidence["dry_run"],
    }
    if "allowlisted" in evidence:
        projected["allowlisted"] = evidence["allowlisted"]
    return projected


def run(detector: Detector, events: Iterable[Event]) -> list[Decision]:
    decisions: list[Decision] = []
    for event in events:
        decisions.extend(detector.process(event))
    return decisions


def read_jsonl(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def fixture_policy(name: str) -> Policy:
    path = FIXTURES / name / "policy.toml"
    return load_policy(path if path.exists() else None)


def fixture_events(name: str) -> list[Event]:
    return [Event.from_dict(data) for data in read_jsonl(FIXTURES / name / "events.jsonl")]


def fixture_expected(name: str) -> list[dict[str, Any]]:
    expected: list[dict[str, Any]] = read_jsonl(FIXTURES / name / "expected.jsonl")
    return expected
