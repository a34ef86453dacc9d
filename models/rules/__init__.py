"""Detection rules, one module each; :func:`build_rules` makes the enabled ones from a policy.

Besides the rules, a :class:`RuleSet` holds the feeds that fill the stores
several rules share (``models/rules/shared.py``, ``geo_history.py``) and the
offence ledgers of escalation (``ledger.py``), and says which rules could not
run (``notices``: the GeoIP rules without a database).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.geo import GeoLookup
from models.policy import ClassIndex, Policy
from models.rules.base import SCOPES, SUBJECT_TYPES, Decision, Rule, RuleContext, Scope
from models.rules.bounce_storm import BounceStormRule
from models.rules.brute_force import BruteForceRule
from models.rules.brute_force_pair import BruteForcePairRule
from models.rules.credential_stuffing import CredentialStuffingRule
from models.rules.geo_history import AccountGeoFeed
from models.rules.impossible_travel import ImpossibleTravelRule
from models.rules.insecure_auth import InsecureAuthRule
from models.rules.keys import Networks
from models.rules.ledger import OffenceLedger
from models.rules.login_ip_spread import LoginIpSpreadRule
from models.rules.new_location import NewLocationRule
from models.rules.outbound_volume import OutboundVolumeRule
from models.rules.password_spray import PasswordSprayRule
from models.rules.prefix_spray import PrefixSprayRule
from models.rules.recipient_fanout import RecipientFanoutRule
from models.rules.shared import Feed, Network, NetworkAuthFeed, SharedNetworkFeed
from models.rules.smtp_burst import SmtpBurstRule

__all__ = [
    "SCOPES",
    "BounceStormRule",
    "BruteForcePairRule",
    "BruteForceRule",
    "CredentialStuffingRule",
    "Decision",
    "Feed",
    "ImpossibleTravelRule",
    "InsecureAuthRule",
    "LoginIpSpreadRule",
    "NewLocationRule",
    "OutboundVolumeRule",
    "PasswordSprayRule",
    "PrefixSprayRule",
    "RecipientFanoutRule",
    "Rule",
    "RuleContext",
    "RuleSet",
    "Scope",
    "SmtpBurstRule",
    "build_rule_set",
    "build_rules",
]


@dataclass(slots=True)
class RuleSet:
    """The enabled rules (in decision order), the feeds they read, and the ledgers."""

    context: RuleContext
    rules: list[Rule] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    ledgers: list[OffenceLedger] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


class _Feeds:
    """Makes each shared feed once: rules with equal window shapes share it."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.made: list[Feed] = []
        self._auth: dict[tuple[Network, int, int], NetworkAuthFeed] = {}
        self._nat: SharedNetworkFeed | None = None

    def auth(self, network: Network, window: int, buckets: int) -> NetworkAuthFeed:
        found = self._auth.get((network, window, buckets))
        if found is None:
            state = self.policy.state
            found = NetworkAuthFeed(network, window, buckets, state.max_keys, state.distinct_cap)
            self._auth[(network, window, buckets)] = found
            self.made.append(found)
        return found

    def nat(self) -> SharedNetworkFeed | None:
        nat = self.policy.nat
        if not nat.enabled:
            return None
        if self._nat is None:
            rules = self.policy.rules
            by_prefix = rules.prefix_spray.enabled or (
                rules.credential_stuffing.enabled and rules.credential_stuffing.by_prefix
            )
            self._nat = SharedNetworkFeed(
                nat.window,
                nat.buckets,
                max(nat.users, nat.prefix_users),
                self.policy.state.max_keys,
                by_prefix,
            )
            # First, so that a login the rules judge is already among the NAT's logins.
            self.made.insert(0, self._nat)
        return self._nat


def build_rule_set(policy: Policy, signing_key: bytes, geo: GeoLookup | None = None) -> RuleSet:
    """The enabled rules and what they share, in a fixed order (the order of decisions)."""
    ledgers = {
        (scope, subject_type): OffenceLedger(subject_type, policy.escalation, policy.state.max_keys)
        for scope in sorted(SCOPES)
        for subject_type in SUBJECT_TYPES
    }
    context = RuleContext(
        signing_key=signing_key,
        allowlist=policy.allowlist_matcher(),
        dry_run=policy.dry_run,
        alert_allowlisted=policy.allowlist.alert,
        max_keys=policy.state.max_keys,
        distinct_cap=policy.state.distinct_cap,
        classes=ClassIndex(policy.classes),
        networks=Networks(policy.network.ipv4_prefix, policy.network.ipv6_prefix),
        ledgers=ledgers,
    )
    result = RuleSet(context=context, ledgers=list(ledgers.values()))
    feeds = _Feeds(policy)
    settings = policy.rules
    nat = policy.nat
    rules = result.rules
    spray = settings.password_spray
    if spray.enabled:
        auth = feeds.auth("ip", spray.window, spray.buckets)
        rules.append(PasswordSprayRule(spray, context, auth, feeds.nat(), nat))
    prefix = settings.prefix_spray
    if prefix.enabled:
        auth = feeds.auth("prefix", prefix.window, prefix.buckets)
        rules.append(PrefixSprayRule(prefix, context, auth, feeds.nat(), nat))
    stuffing = settings.credential_stuffing
    if stuffing.enabled:
        by_ip = feeds.auth("ip", stuffing.window, stuffing.buckets)
        by_prefix = (
            feeds.auth("prefix", stuffing.window, stuffing.buckets) if stuffing.by_prefix else None
        )
        rules.append(CredentialStuffingRule(stuffing, context, by_ip, by_prefix, feeds.nat(), nat))
    brute = settings.brute_force
    if brute.enabled:
        rules.append(BruteForceRule(brute, context))
        if brute.block_pair:
            auth = feeds.auth("ip", brute.window, brute.buckets)
            rules.append(BruteForcePairRule(brute, context, auth, feeds.nat(), nat))
    if settings.smtp_burst.enabled:
        rules.append(SmtpBurstRule(settings.smtp_burst, context))
    if settings.outbound_volume.enabled:
        rules.append(OutboundVolumeRule(settings.outbound_volume, context))
    if settings.recipient_fanout.enabled:
        rules.append(RecipientFanoutRule(settings.recipient_fanout, context))
    if settings.bounce_storm.enabled:
        rules.append(BounceStormRule(settings.bounce_storm, context))
    if settings.login_ip_spread.enabled:
        rules.append(LoginIpSpreadRule(settings.login_ip_spread, context))
    _add_geo_rules(policy, context, geo, result)
    if settings.insecure_auth.enabled:
        rules.append(InsecureAuthRule(settings.insecure_auth, context))
    result.feeds.extend(feeds.made)
    return result


def _add_geo_rules(
    policy: Policy, context: RuleContext, geo: GeoLookup | None, result: RuleSet
) -> None:
    settings = policy.rules
    wanted = [
        name
        for name, enabled in (
            ("new_location", settings.new_location.enabled),
            ("impossible_travel", settings.impossible_travel.enabled),
        )
        if enabled
    ]
    if not wanted:
        return
    if geo is None:
        result.notices.append(
            f"{' and '.join(wanted)} disabled: no GeoIP database was given"
            " (name a GeoIP2/GeoLite2 City and/or ASN .mmdb file in [geoip] city / asn)"
        )
        return
    feed = AccountGeoFeed(geo, policy.geoip, policy.state.max_keys)
    if settings.new_location.enabled:
        if geo.has_city or (geo.has_asn and settings.new_location.new_asn):
            result.rules.append(NewLocationRule(settings.new_location, context, feed))
        else:
            result.notices.append(
                "new_location disabled: it needs a City or Country database ([geoip] city),"
                " or an ASN database with new_asn = true"
            )
    if settings.impossible_travel.enabled:
        if geo.has_city:
            result.rules.append(ImpossibleTravelRule(settings.impossible_travel, context, feed))
        else:
            result.notices.append(
                "impossible_travel disabled: it needs a City database ([geoip] city)"
            )
    if any(isinstance(rule, NewLocationRule | ImpossibleTravelRule) for rule in result.rules):
        result.feeds.append(feed)


def build_rules(policy: Policy, signing_key: bytes, geo: GeoLookup | None = None) -> list[Rule]:
    """The enabled rules, in a fixed order (the order of their decisions for one event)."""
    return build_rule_set(policy, signing_key, geo).rules
