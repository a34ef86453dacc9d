"""Alerts on `mail.alerts`, in Elastic Common Schema form.

A public contract (DESIGN.md): SOC dashboards and SIEMs read these. The ECS
fields are nested objects, as ECS documents are indexed; rule evidence goes
under the ``mailwarden`` object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.events import iso_utc


@dataclass(slots=True)
class Alert:
    """One detection, with the evidence that justifies it."""

    rule: str
    epoch: float
    category: str
    outcome: str
    severity: int
    reason: str
    user: str | None = None
    source_ip: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    related_users: list[str] = field(default_factory=list)
    related_ips: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    mitre: str | None = None
    dry_run: bool = False

    @property
    def id(self) -> str:
        material = f"{self.rule}\x00{self.user}\x00{self.source_ip}\x00{self.epoch:.6f}"
        return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    @property
    def key(self) -> str:
        return self.user or self.source_ip or self.rule

    def to_dict(self) -> dict[str, Any]:
        users = sorted({*self.related_users, *([self.user] if self.user else [])})
        ips = sorted({*self.related_ips, *([self.source_ip] if self.source_ip else [])})
        doc: dict[str, Any] = {
            "type": "alert",
            "@timestamp": iso_utc(self.epoch),
            "event": {
                "id": self.id,
                "kind": "alert",
                "category": [self.category],
                "outcome": self.outcome,
                "severity": self.severity,
                "reason": self.reason,
            },
            "rule": {"name": self.rule},
            "related": {"user": users, "ip": ips},
            "mailwarden": {
                **self.evidence,
                "commands": list(self.commands),
                "dry_run": self.dry_run,
            },
        }
        if self.user:
            doc["user"] = {"name": self.user}
        if self.source_ip:
            doc["source"] = {"ip": self.source_ip}
        if self.mitre:
            doc["threat"] = {"technique": {"id": [self.mitre]}}
        return doc

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
