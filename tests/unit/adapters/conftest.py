"""Signed commands for the adapter tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from models.commands import Command, new_command

KEY = b"adapter-test-signing-key"
DAY = 86400.0
# A rule's audit text, as the rules write it: never to be sent to a client.
AUDIT_REASON = "30 submissions within 60 s (threshold 30)"

SignCommand = Callable[..., Command]


def ref(command: Command) -> str:
    """The reference a client is given for ``command``."""
    return f"(ref {command.id[:8]})"


@pytest.fixture
def signing_key() -> bytes:
    return KEY


@pytest.fixture
def sign() -> SignCommand:
    """Build a command signed with KEY, issued a minute ago and valid for a day by default."""

    def build(
        action: str,
        subject: str,
        subject_type: str = "account",
        *,
        reason: str = AUDIT_REASON,
        issued: float | None = None,
        duration: float = DAY,
        dry_run: bool = False,
        releases: str | None = None,
        key: bytes = KEY,
    ) -> Command:
        return new_command(
            action=action,
            subject_type=subject_type,
            subject=subject,
            rule="test_rule",
            reason=reason,
            issued_epoch=time.time() - 60 if issued is None else issued,
            duration=duration,
            key=key,
            dry_run=dry_run,
            releases=releases,
        )

    return build
