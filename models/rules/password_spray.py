"""Password spraying: one IP failing logins against many different accounts.

A sprayer tries one or two common passwords on many accounts, staying under
any per-account limit; seen from the attacking IP it is many distinct
accounts failing. The IP is the attacker, so the IP is blocked; the accounts
are victims and are left alone.

Reads the shared ``auth_by_ip`` statistics (``models/rules/shared.py``):
``auth`` failures (never ``auth_echo``, which repeats an attempt already
counted) by client IP. A failure whose account is unknown (``user`` null, as
in Postfix "Connection lost to authentication server" with
``sasl_username=(unavailable)``) counts as a failure but not as a distinct
account; accounts are compared normalized (``Alice@`` and ``alice@`` are
one). Defaults, within 10 min: failures on 10 distinct accounts, or 100
failures whatever the accounts, block the IP for one hour (MITRE T1110.003),
longer for a repeat offender. Once per episode: quiet while the block runs.

Shared addresses (office or campus NAT, CGNAT) also see many accounts fail.
Three guards keep them unblocked:

- an account that fails and then logs in successfully from the same key
  within the window mistyped, or changed its password: it is not counted
  among the accounts guessed at (a sprayer's guesses seldom succeed, and a
  success it does get only removes that one account);
- the NAT store: where at least ``[nat] users`` distinct accounts logged in
  successfully within ``[nat] window``, the thresholds are multiplied by
  ``[nat] factor`` (or, with ``[nat] exempt``, the rule only alerts);
- the failure ratio: failures must make at least ``min_failure_ratio``
  (default 0.5) of the IP's logins in the window. Successes are counted
  only for IPs already failing, so ordinary logins cost no state.

:class:`SprayRule` holds the logic; ``models/rules/prefix_spray.py`` applies
it to whole prefixes.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import NatSettings, PasswordSpraySettings, PrefixSpraySettings
from models.rules.base import (
    NOTHING,
    SEVERITY_HIGH,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
    latest_expiry,
)
from models.rules.keys import EventKeys
from models.rules.shared import (
    FAILED_ACCOUNTS,
    FAILURES,
    SUCCEEDED_ACCOUNTS,
    SUCCESSES,
    NetworkAuthFeed,
    SharedNetworkFeed,
)


class SprayRule(Rule):
    """Many accounts failing from one network key (an IP, or a prefix)."""

    scope = "ip"
    kinds = frozenset({AUTH})
    subject_type: str

    def __init__(
        self,
        settings: PasswordSpraySettings | PrefixSpraySettings,
        context: RuleContext,
        auth: NetworkAuthFeed,
        nat: SharedNetworkFeed | None,
        nat_settings: NatSettings,
    ) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.auth = auth
        self.store = auth.store
        self.nat = nat
        self.nat_settings = nat_settings
        self.nat_users = nat_settings.users if auth.network == "ip" else nat_settings.prefix_users

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return ()

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        if event.outcome != "failure":
            return NOTHING
        window = self.auth.window
        key = self.auth.key
        if window is None or key is None or event.epoch < window.quiet_until:
            return NOTHING
        store = self.store
        settings = self.settings
        accounts = store.distinct_count(window, FAILED_ACCOUNTS)
        failures = store.total(window, FAILURES)
        if self.near(accounts, settings.accounts) or self.near(failures, settings.failures):
            store.note_time(window, event.epoch)
        if accounts < settings.accounts and failures < settings.failures:
            return NOTHING
        users = self.nat.users(key, event.epoch) if self.nat is not None else 0
        shared = users >= self.nat_users
        factor = self.nat_settings.factor if shared and not self.nat_settings.exempt else 1.0
        account_threshold = min(round(settings.accounts * factor), self.context.distinct_cap)
        failure_threshold = round(settings.failures * factor)
        guessed = store.values_without(window, FAILED_ACCOUNTS, SUCCEEDED_ACCOUNTS)
        if len(guessed) >= account_threshold:
            trigger, threshold = "distinct_accounts", account_threshold
            reason = (
                f"failed logins on {len(guessed)} distinct accounts within {settings.window} s"
                f" (threshold {account_threshold})"
            )
        elif failures >= failure_threshold:
            trigger, threshold = "failures", failure_threshold
            reason = (
                f"{failures} failed logins within {settings.window} s"
                f" (threshold {failure_threshold})"
            )
        else:
            return NOTHING
        successes = store.total(window, SUCCESSES)
        if failures < settings.min_failure_ratio * (failures + successes):
            return NOTHING
        sample = guessed[:10]
        evidence = self.window_evidence(window, threshold)
        evidence["trigger"] = trigger
        evidence["counts"] = {"failures": failures, "successes": successes}
        evidence["distinct"] = {"accounts": {"count": len(guessed), "sample": sample}}
        evidence["failed_then_logged_in"] = accounts - len(guessed)
        if self.subject_type == "prefix":
            evidence["prefix"] = key
            evidence["source_ip"] = keys.ip
        if shared:
            evidence["shared_network"] = {
                "accounts_logged_in": users,
                "threshold_factor": factor,
                "exempt": self.nat_settings.exempt,
            }
        actions: tuple[Action, ...] = ()
        if not (shared and self.nat_settings.exempt):
            actions = (Action("block_ip", self.subject_type, key, settings.duration),)
        finding = Finding(
            reason=reason if self.subject_type == "ip" else f"prefix {key}: {reason}",
            category="authentication",
            outcome="failure",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            source_ip=keys.ip,
            related_users=tuple(sample),
            mitre="T1110.003",
        )
        decisions = self.decide(event, finding, actions)
        window.quiet_until = latest_expiry(decisions, event.epoch + settings.duration)
        return decisions


class PasswordSprayRule(SprayRule):
    name = "password_spray"
    subject_type = "ip"
