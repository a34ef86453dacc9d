"""Repeat offenders: each new command against the same subject lasts longer.

The ledger remembers, per subject, the event times of the findings that led
to commands against it within ``memory`` (default 30 days), at most
``history`` of them. The n-th offence in that memory gets the rule's duration
times ``factor ** (n - 1)``, capped at ``max_duration`` (never below the
rule's own duration): with the defaults an IP blocked for an hour is blocked
for two hours the second time, four the third, and at most a week. This is
fail2ban's ``bantime.increment`` and CrowdSec's ``duration_expr``, by event
time, so replay and live agree.

One ledger per subject type (``account``, ``ip``, ``prefix``) per scope: the
worker runs each scope apart, and replay must decide as the worker does. A
finding counts once per subject, however many commands it issues against it
(a suspended login and a password reset are one offence).
"""

from __future__ import annotations

from typing import Any

from models.policy import EscalationSettings
from models.rules.keystore import KeyedEntry, KeyedStore


class Offences(KeyedEntry):
    __slots__ = ("times",)

    def __init__(self, last_seen: float) -> None:
        super().__init__(last_seen)
        self.times: list[float] = []


class OffenceLedger(KeyedStore[Offences]):
    def __init__(self, subject_type: str, settings: EscalationSettings, max_keys: int) -> None:
        super().__init__(f"offences.{subject_type}", max_keys, idle=settings.memory)
        self.settings = settings

    def record(self, subject: str, epoch: float) -> int:
        """Note an offence of ``subject`` at ``epoch``; its rank in memory (1 = first)."""
        entry = self.entry(subject, epoch)
        assert entry is not None
        oldest = epoch - self.settings.memory
        times = [t for t in entry.times if oldest < t <= epoch]
        times.append(epoch)
        rank = len(times)
        later = [t for t in entry.times if t > epoch]
        entry.times = (times + later)[-self.settings.history :]
        return min(rank, self.settings.history)

    def duration(self, base: float, rank: int) -> float:
        """How long the ``rank``-th offence's command lasts, for a rule lasting ``base``."""
        settings = self.settings
        if rank <= 1 or settings.factor == 1:
            return base
        return min(base * settings.factor ** (rank - 1), max(base, settings.max_duration))

    def new_entry(self, epoch: float) -> Offences:
        return Offences(epoch)

    def encode(self, entry: Offences) -> dict[str, Any]:
        return {"times": list(entry.times)}

    def decode(self, data: dict[str, Any]) -> Offences:
        entry = Offences(0.0)
        entry.times = sorted(float(t) for t in data["times"])[-self.settings.history :]
        return entry
