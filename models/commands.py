"""Enforcement commands on `mail.control`, and their HMAC signatures.

A command is a public contract (DESIGN.md): adapters written by others verify
``sig`` and act on ``action`` for ``subject``. The id is derived from the
decision itself (rule, action, subject, event time), so the same decision made
twice, by a replayed worker or by replay and live, has the same id.

The topic is compacted with key ``"<action>|<subject_type>|<subject>"``
(:func:`control_key`), so the latest command per subject and action wins; a
``release`` is published under the key of the action it lifts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import orjson

from models.events import iso_utc

Action = Literal[
    "block_ip",
    "suspend_smtp",
    "suspend_login",
    "isolate_sender",
    "require_password_reset",
    "deny_insecure",
    "release",
]
SubjectType = Literal["account", "ip", "prefix"]

ACTIONS: frozenset[str] = frozenset(
    {
        "block_ip",
        "suspend_smtp",
        "suspend_login",
        "isolate_sender",
        "require_password_reset",
        "deny_insecure",
        "release",
    }
)
SUBJECT_TYPES: frozenset[str] = frozenset({"account", "ip", "prefix"})


class InvalidCommand(ValueError):
    """A record on `mail.control` that is not a well-formed, correctly signed command."""


@dataclass(slots=True, frozen=True)
class Command:
    """One signed enforcement decision.

    ``issued_at`` and ``expires_at`` are ISO-8601 UTC; ``issued_epoch`` and
    ``expires_epoch`` carry the same instants as numbers for adapters. For a
    ``release``, ``releases`` names the action being lifted.
    """

    id: str
    action: str
    subject_type: str
    subject: str
    rule: str
    reason: str
    issued_at: str
    expires_at: str
    issued_epoch: float
    expires_epoch: float
    dry_run: bool = False
    releases: str | None = None
    type: str = "command"
    sig: str = ""

    @property
    def key(self) -> str:
        return control_key(self.releases or self.action, self.subject_type, self.subject)

    def unsigned_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["sig"]
        return data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self)


def control_key(action: str, subject_type: str, subject: str) -> str:
    return f"{action}|{subject_type}|{subject}"


def command_id(rule: str, action: str, subject_type: str, subject: str, issued_epoch: float) -> str:
    material = f"{rule}\x00{action}\x00{subject_type}\x00{subject}\x00{issued_epoch:.6f}"
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _canonical(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def signature(data: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of every field but ``sig``."""
    body = {k: v for k, v in data.items() if k != "sig"}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def new_command(
    *,
    action: str,
    subject_type: str,
    subject: str,
    rule: str,
    reason: str,
    issued_epoch: float,
    duration: float,
    key: bytes,
    dry_run: bool = False,
    releases: str | None = None,
) -> Command:
    """Build and sign a command whose life starts at the event time ``issued_epoch``."""
    if action not in ACTIONS:
        raise InvalidCommand(f"unknown action {action!r}")
    if subject_type not in SUBJECT_TYPES:
        raise InvalidCommand(f"unknown subject_type {subject_type!r}")
    expires_epoch = issued_epoch + duration
    unsigned = Command(
        id=command_id(rule, action, subject_type, subject, issued_epoch),
        action=action,
        subject_type=subject_type,
        subject=subject,
        rule=rule,
        reason=reason,
        issued_at=iso_utc(issued_epoch),
        expires_at=iso_utc(expires_epoch),
        issued_epoch=issued_epoch,
        expires_epoch=expires_epoch,
        dry_run=dry_run,
        releases=releases,
    )
    return replace(unsigned, sig=signature(unsigned.unsigned_dict(), key))


def verify_command(raw: bytes | str | dict[str, Any], key: bytes) -> Command:
    """Parse and authenticate a record from `mail.control`.

    Raises :class:`InvalidCommand` with the reason when the record is not JSON,
    misses fields, names an unknown action, or its signature does not match.
    """
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidCommand(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidCommand("not a JSON object")
    if data.get("type") != "command":
        raise InvalidCommand(f"type is {data.get('type')!r}, not 'command'")
    sig = data.get("sig")
    if not isinstance(sig, str) or not sig:
        raise InvalidCommand("unsigned")
    if not hmac.compare_digest(sig, signature(data, key)):
        raise InvalidCommand("bad signature")
    try:
        command = Command(**data)
    except TypeError as exc:
        raise InvalidCommand(f"malformed fields: {exc}") from exc
    if command.action not in ACTIONS:
        raise InvalidCommand(f"unknown action {command.action!r}")
    if command.subject_type not in SUBJECT_TYPES:
        raise InvalidCommand(f"unknown subject_type {command.subject_type!r}")
    return command
