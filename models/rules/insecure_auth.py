"""Insecure authentication: a successful login whose password crossed the network unprotected.

A login over plaintext (``tls`` is ``none``) or an outdated protocol
(below ``min_tls``, default TLSv1.2) exposes a working password to anyone on
the path. The owner is not an attacker but should be told to fix the client,
so the rule alerts (severity low); with ``deny = true`` it also issues
``deny_insecure`` for the account, which adapters turn into refusing that
account's logins without adequate TLS until it expires.

Over successful ``auth`` events with a known TLS state; a version the rule
does not know (Dovecot's default log format says only "TLS") is not judged,
nor a channel Dovecot calls ``secured`` (loopback webmail, trusted networks).
One alert per account per ``quiet`` (default one day).
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import TLS_VERSIONS, InsecureAuthSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_LOW,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
)
from models.rules.keys import EventKeys
from models.rules.keystore import QuietStore

PLAINTEXT = "none"


class InsecureAuthRule(Rule):
    name = "insecure_auth"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, settings: InsecureAuthSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self._weak = _weak_versions(settings.min_tls)
        self.quiet = QuietStore(self.name, context.max_keys, idle=settings.quiet)

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.quiet,)

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        # Dovecot's `secured`: a trusted channel (loopback webmail, login_trusted_networks).
        secured = event.extra.get("secured") is True if event.extra else False
        if event.outcome != "success" or event.tls is None or key is None or secured:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        weak = self._weak if settings is self.settings else _weak_versions(settings.min_tls)
        if not settings.enabled or event.tls not in weak:
            return NOTHING
        if self.quiet.is_quiet(key, event.epoch):
            return NOTHING
        self.quiet.silence(key, event.epoch, event.epoch + settings.quiet)
        tls = event.tls or PLAINTEXT
        shown = "plaintext" if tls == PLAINTEXT else tls
        evidence = {
            "tls": tls,
            "min_tls": settings.min_tls,
            "protocol": event.protocol,
            "sample_times": [event.ts],
        }
        finding = Finding(
            reason=f"successful {event.protocol or 'unknown'} login over {shown}"
            f" (minimum {settings.min_tls})",
            category="authentication",
            outcome="success",
            severity=SEVERITY_LOW,
            evidence=evidence,
            user=key,
            source_ip=event.client_ip,
        )
        actions = (
            (Action("deny_insecure", "account", key, settings.quiet),) if settings.deny else ()
        )
        return self.decide(event, finding, actions, dry_run=settings.dry_run)


def _weak_versions(min_tls: str) -> frozenset[str]:
    """Plaintext and every protocol version below ``min_tls``."""
    return frozenset({PLAINTEXT, *TLS_VERSIONS[: TLS_VERSIONS.index(min_tls)]})
