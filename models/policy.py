"""The detection policy: which rules run, their thresholds, allowlists, classes, dry run.

Read from TOML (``etc/policy.toml`` documents every knob and its default) by
:func:`load_policy`. Every table maps onto one frozen dataclass; a key this
version does not know, a value of the wrong type or out of range is refused
with an error naming the file and the key, because a typo in a threshold
must not silently fall back to a default. Durations and windows are whole
seconds of event time.

Account classes (``[classes.<name>]``) override the knobs of account rules
for the accounts and account domains they list: per-domain thresholds, and
classes such as "bulk" for newsletter senders. An account listed by name
takes its class over the class of its domain.

The signing key and the GeoIP database files are not read here: the key
belongs to the runtime configuration (``mailwarden/config.py``) and the
databases are opened by the caller, who hands the readers to the detector
(``models/geo.py``); the policy only names the files.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Protocol versions in increasing order, as Postfix and Dovecot log them.
TLS_VERSIONS: tuple[str, ...] = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# What a rule may do about a misbehaving sender, and about a suspicious login.
SENDER_ACTIONS: tuple[str, ...] = ("alert", "suspend_smtp", "isolate_sender")
LOGIN_ACTIONS: tuple[str, ...] = ("alert", "suspend_login")

# Knobs a class may not override: they shape state shared by every account.
SHARED_KNOBS = frozenset({"window", "buckets", "history_days"})

Settings = TypeVar("Settings")


class PolicyError(ValueError):
    """The policy file is missing, unreadable, or holds an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class EnforcementSettings:
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class EscalationSettings:
    factor: float = 2.0
    max_duration: int = 604_800
    memory: int = 2_592_000
    history: int = 16


@dataclass(frozen=True, slots=True)
class StateSettings:
    max_keys: int = 1_000_000
    distinct_cap: int = 256


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64


@dataclass(frozen=True, slots=True)
class NatSettings:
    enabled: bool = True
    users: int = 10
    prefix_users: int = 30
    window: int = 3600
    buckets: int = 6
    factor: float = 3.0
    exempt: bool = False


@dataclass(frozen=True, slots=True)
class AllowlistSettings:
    ips: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    alert: bool = True


@dataclass(frozen=True, slots=True)
class GeoipSettings:
    city: str = ""
    asn: str = ""
    memory: int = 2_592_000
    countries: int = 16
    networks: int = 32


@dataclass(frozen=True, slots=True)
class SmtpBurstSettings:
    enabled: bool = True
    dry_run: bool = False
    threshold: int = 30
    window: int = 60
    buckets: int = 6
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class PasswordSpraySettings:
    enabled: bool = True
    dry_run: bool = False
    accounts: int = 10
    failures: int = 100
    min_failure_ratio: float = 0.5
    window: int = 600
    buckets: int = 10
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class PrefixSpraySettings:
    enabled: bool = True
    dry_run: bool = False
    accounts: int = 30
    failures: int = 300
    min_failure_ratio: float = 0.5
    window: int = 600
    buckets: int = 10
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class BruteForceSettings:
    enabled: bool = True
    dry_run: bool = False
    failures: int = 20
    window: int = 600
    buckets: int = 10
    quiet: int = 3600
    block_pair: bool = False
    pair_failures: int = 10
    pair_duration: int = 3600


@dataclass(frozen=True, slots=True)
class BounceStormSettings:
    enabled: bool = True
    dry_run: bool = False
    ratio: float = 0.5
    min_deliveries: int = 20
    window: int = 3600
    buckets: int = 6
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class CredentialStuffingSettings:
    enabled: bool = True
    dry_run: bool = False
    failed_accounts: int = 10
    min_failure_ratio: float = 0.8
    by_prefix: bool = True
    prefix_failed_accounts: int = 30
    window: int = 600
    buckets: int = 10
    duration: int = 86400


@dataclass(frozen=True, slots=True)
class OutboundVolumeSettings:
    enabled: bool = True
    dry_run: bool = False
    action: str = "isolate_sender"
    history_days: int = 7
    learning_hours: int = 48
    cold_start_hourly: int = 100
    min_hourly: int = 50
    mad_factor: float = 10.0
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class RecipientFanoutSettings:
    enabled: bool = True
    dry_run: bool = False
    action: str = "suspend_smtp"
    recipients: int = 150
    domains: int = 50
    window: int = 3600
    buckets: int = 6
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class LoginIpSpreadSettings:
    enabled: bool = True
    dry_run: bool = False
    action: str = "alert"
    ips: int = 10
    prefixes: int = 8
    window: int = 1800
    buckets: int = 6
    quiet: int = 3600
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class NewLocationSettings:
    enabled: bool = True
    dry_run: bool = False
    action: str = "alert"
    learning: int = 86400
    new_asn: bool = False
    quiet: int = 3600
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class ImpossibleTravelSettings:
    enabled: bool = True
    dry_run: bool = False
    action: str = "alert"
    speed_kmh: int = 1000
    min_km: int = 500
    quiet: int = 3600
    duration: int = 3600


@dataclass(frozen=True, slots=True)
class InsecureAuthSettings:
    enabled: bool = True
    dry_run: bool = False
    min_tls: str = "TLSv1.2"
    deny: bool = False
    quiet: int = 86400


@dataclass(frozen=True, slots=True)
class RuleSettings:
    smtp_burst: SmtpBurstSettings = field(default_factory=SmtpBurstSettings)
    password_spray: PasswordSpraySettings = field(default_factory=PasswordSpraySettings)
    prefix_spray: PrefixSpraySettings = field(default_factory=PrefixSpraySettings)
    brute_force: BruteForceSettings = field(default_factory=BruteForceSettings)
    bounce_storm: BounceStormSettings = field(default_factory=BounceStormSettings)
    credential_stuffing: CredentialStuffingSettings = field(
        default_factory=CredentialStuffingSettings
    )
    outbound_volume: OutboundVolumeSettings = field(default_factory=OutboundVolumeSettings)
    recipient_fanout: RecipientFanoutSettings = field(default_factory=RecipientFanoutSettings)
    login_ip_spread: LoginIpSpreadSettings = field(default_factory=LoginIpSpreadSettings)
    new_location: NewLocationSettings = field(default_factory=NewLocationSettings)
    impossible_travel: ImpossibleTravelSettings = field(default_factory=ImpossibleTravelSettings)
    insecure_auth: InsecureAuthSettings = field(default_factory=InsecureAuthSettings)


# Rules keyed by IP or prefix: classes of accounts cannot override them.
NETWORK_RULES = frozenset({"password_spray", "prefix_spray", "credential_stuffing"})


@dataclass(frozen=True, slots=True)
class AccountClass:
    """Accounts and account domains whose account rules run with other knobs.

    ``rules`` holds the complete settings of every rule for the class: the
    policy's, with the class's overrides applied.
    """

    name: str
    accounts: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    rules: RuleSettings = field(default_factory=RuleSettings)


class Allowlist:
    """Subjects that are never acted on: IP addresses or networks, accounts, service senders.

    Accounts compare case-insensitively; an IP string that is not an address
    is never allowlisted; a prefix is allowlisted when it overlaps an
    allowlisted network (blocking it would block that network). A sender
    entry is an address or ``@domain``.
    """

    __slots__ = ("_accounts", "_networks", "_sender_domains", "_senders")

    def __init__(
        self, ips: tuple[str, ...], accounts: tuple[str, ...], senders: tuple[str, ...] = ()
    ) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(ip, strict=False) for ip in ips
        )
        self._accounts = frozenset(account.strip().casefold() for account in accounts)
        folded = [sender.strip().casefold() for sender in senders]
        self._senders = frozenset(s for s in folded if not s.startswith("@"))
        self._sender_domains = frozenset(s[1:] for s in folded if s.startswith("@"))

    def has_ip(self, ip: str) -> bool:
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def has_network(self, prefix: str) -> bool:
        if not self._networks:
            return False
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            return False
        return any(
            network.version == allowed.version and network.overlaps(allowed)
            for allowed in self._networks
        )

    def has_account(self, account: str) -> bool:
        return account.strip().casefold() in self._accounts

    @property
    def has_senders(self) -> bool:
        return bool(self._senders or self._sender_domains)

    def has_sender(self, address: str) -> bool:
        """Whether ``address`` (a submitting account or an envelope sender) is a service sender."""
        folded = address.strip().casefold()
        if folded in self._senders:
            return True
        _, at, domain = folded.rpartition("@")
        return bool(at) and domain in self._sender_domains


@dataclass(frozen=True, slots=True)
class Policy:
    enforcement: EnforcementSettings = field(default_factory=EnforcementSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    state: StateSettings = field(default_factory=StateSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    nat: NatSettings = field(default_factory=NatSettings)
    allowlist: AllowlistSettings = field(default_factory=AllowlistSettings)
    geoip: GeoipSettings = field(default_factory=GeoipSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)
    classes: tuple[AccountClass, ...] = ()

    @property
    def dry_run(self) -> bool:
        return self.enforcement.dry_run

    def allowlist_matcher(self) -> Allowlist:
        return Allowlist(self.allowlist.ips, self.allowlist.accounts, self.allowlist.senders)


class ClassIndex:
    """Finds the class of an account: by the account itself, else by its domain."""

    __slots__ = ("_by_account", "_by_domain", "classes")

    def __init__(self, classes: tuple[AccountClass, ...]) -> None:
        self.classes = classes
        self._by_account: dict[str, AccountClass] = {}
        self._by_domain: dict[str, AccountClass] = {}
        for account_class in classes:
            for account in account_class.accounts:
                self._by_account[account.strip().casefold()] = account_class
            for domain in account_class.domains:
                self._by_domain[_domain_entry(domain)] = account_class

    def __bool__(self) -> bool:
        return bool(self._by_account or self._by_domain)

    def of(self, account_key: str) -> AccountClass | None:
        """The class of a normalized account name, or None."""
        found = self._by_account.get(account_key)
        if found is not None or not self._by_domain:
            return found
        _, at, domain = account_key.rpartition("@")
        return self._by_domain.get(domain) if at else None

    def pick(self, account_key: str, default: Settings, rule: str) -> Settings:
        """The settings of ``rule`` for the account: its class's, else ``default``."""
        if not self.classes:
            return default
        account_class = self.of(account_key)
        if account_class is None:
            return default
        chosen: Settings = getattr(account_class.rules, rule)
        return chosen


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate the policy file; without a path, the built-in defaults."""
    if path is None:
        return Policy()
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file not found: {file}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{file}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{file}: not valid TOML: {exc}") from exc
    return policy_from_dict(raw, source=str(file))


def policy_from_dict(raw: dict[str, Any], source: str = "<policy>") -> Policy:
    """Build a validated :class:`Policy` from parsed TOML; errors name ``source`` and the key."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: the policy must be a table")
    body = {key: value for key, value in raw.items() if key != "classes"}
    policy: Policy = _build(Policy, body, "", source, skip=frozenset({"classes"}))
    _check(policy, source)
    classes = _build_classes(raw.get("classes", {}), policy, source)
    return replace(policy, classes=classes) if classes else policy


def _build(
    cls: type[Any], raw: Any, where: str, source: str, skip: frozenset[str] = frozenset()
) -> Any:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: [{where}] must be a table")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.name not in skip]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        place = f"[{where}]" if where else "top level"
        known = sorted({*names, *skip})
        raise PolicyError(
            f"{source}: unknown key {_dotted(where, unknown[0])!r} at {place}"
            f" (known: {', '.join(known)})"
        )
    values: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        key = _dotted(where, name)
        expected = hints[name]
        if isinstance(expected, type) and hasattr(expected, "__dataclass_fields__"):
            values[name] = _build(expected, raw[name], key, source)
        else:
            values[name] = _convert(expected, raw[name], key, source)
    return cls(**values)


def _convert(expected: Any, value: Any, key: str, source: str) -> Any:
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise PolicyError(f"{source}: {key} must be true or false, got {value!r}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PolicyError(f"{source}: {key} must be an integer, got {value!r}")
    if expected is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise PolicyError(f"{source}: {key} must be a number, got {value!r}")
    if expected is str:
        if isinstance(value, str):
            return value
        raise PolicyError(f"{source}: {key} must be a string, got {value!r}")
    if expected == tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise PolicyError(f"{source}: {key} must be a list of strings, got {value!r}")
    raise PolicyError(f"{source}: {key} has a type this version cannot read")


def _dotted(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _require(ok: bool, source: str, key: str, message: str, value: Any) -> None:
    if not ok:
        raise PolicyError(f"{source}: {key} {message}, got {value!r}")


def _check(policy: Policy, source: str) -> None:
    state = policy.state
    _require(state.max_keys >= 1, source, "state.max_keys", "must be at least 1", state.max_keys)
    _require(
        state.distinct_cap >= 1,
        source,
        "state.distinct_cap",
        "must be at least 1",
        state.distinct_cap,
    )
    _check_escalation(policy.escalation, source)
    _check_network(policy.network, source)
    _check_nat(policy.nat, state, source)
    _check_allowlist(policy.allowlist, source)
    _check_geoip(policy.geoip, source)
    for rule in fields(policy.rules):
        _check_rule(rule.name, getattr(policy.rules, rule.name), state, source, "rules")


def _check_escalation(escalation: EscalationSettings, source: str) -> None:
    _require(
        escalation.factor >= 1, source, "escalation.factor", "must be at least 1", escalation.factor
    )
    for name in ("max_duration", "memory", "history"):
        value = getattr(escalation, name)
        _require(value > 0, source, f"escalation.{name}", "must be positive", value)


def _check_network(network: NetworkSettings, source: str) -> None:
    _require(
        8 <= network.ipv4_prefix <= 32,
        source,
        "network.ipv4_prefix",
        "must be between 8 and 32",
        network.ipv4_prefix,
    )
    _require(
        16 <= network.ipv6_prefix <= 128,
        source,
        "network.ipv6_prefix",
        "must be between 16 and 128",
        network.ipv6_prefix,
    )


def _check_nat(nat: NatSettings, state: StateSettings, source: str) -> None:
    for name in ("users", "prefix_users", "window", "buckets"):
        value = getattr(nat, name)
        _require(value > 0, source, f"nat.{name}", "must be positive", value)
        if name in ("users", "prefix_users"):
            _require(
                value <= state.distinct_cap,
                source,
                f"nat.{name}",
                f"must not exceed state.distinct_cap ({state.distinct_cap})",
                value,
            )
    _require(nat.factor >= 1, source, "nat.factor", "must be at least 1", nat.factor)
    _check_geometry(nat.window, nat.buckets, "nat", source)


def _check_allowlist(allowlist: AllowlistSettings, source: str) -> None:
    for ip in allowlist.ips:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise PolicyError(
                f"{source}: allowlist.ips holds {ip!r}, which is not an IP address or network"
            ) from None
    for sender in allowlist.senders:
        folded = sender.strip()
        _, at, domain = folded.rpartition("@")
        _require(
            bool(at) and bool(domain) and " " not in folded,
            source,
            "allowlist.senders",
            "entries must be addresses (user@domain) or @domain",
            sender,
        )


def _check_geoip(geoip: GeoipSettings, source: str) -> None:
    for name in ("memory", "countries", "networks"):
        value = getattr(geoip, name)
        _require(value > 0, source, f"geoip.{name}", "must be positive", value)


def _check_geometry(window: int, buckets: int, prefix: str, source: str) -> None:
    _require(
        window % buckets == 0,
        source,
        f"{prefix}.window",
        f"must be a multiple of {prefix}.buckets ({buckets})",
        window,
    )


# Ratios: a share between 0 and 1; ``ratio`` must be above 0, the NAT guards may be 0 (off).
_RATIOS = {"ratio": False, "min_failure_ratio": True}
# Thresholds on distinct counts, which saturate at state.distinct_cap.
_DISTINCT_THRESHOLDS = {
    "password_spray": ("accounts",),
    "prefix_spray": ("accounts",),
    "credential_stuffing": ("failed_accounts", "prefix_failed_accounts"),
    "login_ip_spread": ("ips", "prefixes"),
    "recipient_fanout": ("recipients", "domains"),
}
_ACTIONS = {
    "outbound_volume": SENDER_ACTIONS,
    "recipient_fanout": SENDER_ACTIONS,
    "login_ip_spread": LOGIN_ACTIONS,
    "new_location": LOGIN_ACTIONS,
    "impossible_travel": LOGIN_ACTIONS,
}


def _check_rule(name: str, settings: Any, state: StateSettings, source: str, where: str) -> None:
    prefix = f"{where}.{name}"
    for knob in fields(settings):
        value = getattr(settings, knob.name)
        key = f"{prefix}.{knob.name}"
        if knob.name in _RATIOS:
            may_be_zero = _RATIOS[knob.name]
            if may_be_zero:
                _require(value >= 0, source, key, "must not be negative", value)
            else:
                _require(value > 0, source, key, "must be positive", value)
            _require(value <= 1.0, source, key, "must be at most 1", value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            _require(value > 0, source, key, "must be positive", value)
    if hasattr(settings, "window"):
        _check_geometry(settings.window, settings.buckets, prefix, source)
    for knob_name in _DISTINCT_THRESHOLDS.get(name, ()):
        value = getattr(settings, knob_name)
        _require(
            value <= state.distinct_cap,
            source,
            f"{prefix}.{knob_name}",
            f"must not exceed state.distinct_cap ({state.distinct_cap})",
            value,
        )
    choices = _ACTIONS.get(name)
    if choices is not None:
        _require(
            settings.action in choices,
            source,
            f"{prefix}.action",
            f"must be one of {', '.join(choices)}",
            settings.action,
        )
    if name == "insecure_auth":
        _require(
            settings.min_tls in TLS_VERSIONS,
            source,
            f"{prefix}.min_tls",
            f"must be one of {', '.join(TLS_VERSIONS)}",
            settings.min_tls,
        )


def _domain_entry(domain: str) -> str:
    return domain.strip().casefold().removeprefix("@")


def _build_classes(raw: Any, policy: Policy, source: str) -> tuple[AccountClass, ...]:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: [classes] must be a table of classes")
    classes: list[AccountClass] = []
    owner: dict[str, str] = {}
    for class_name, table in raw.items():
        where = f"classes.{class_name}"
        if not isinstance(table, dict):
            raise PolicyError(f"{source}: [{where}] must be a table")
        unknown = sorted(set(table) - {"accounts", "domains", "rules"})
        if unknown:
            raise PolicyError(
                f"{source}: unknown key '{where}.{unknown[0]}' (known: accounts, domains, rules)"
            )
        accounts = _convert(tuple[str, ...], table.get("accounts", []), f"{where}.accounts", source)
        domains = _convert(tuple[str, ...], table.get("domains", []), f"{where}.domains", source)
        if not accounts and not domains:
            raise PolicyError(f"{source}: [{where}] lists no accounts and no domains")
        members = [f"account {a.strip().casefold()}" for a in accounts]
        members += [f"domain {_domain_entry(d)}" for d in domains]
        for member in members:
            if member in owner:
                raise PolicyError(
                    f"{source}: {member} is in both classes.{owner[member]} and {where}"
                )
            owner[member] = class_name
        rules = _class_rules(table.get("rules", {}), policy, where, source)
        classes.append(AccountClass(class_name, accounts, domains, rules))
    return tuple(classes)


def _class_rules(raw: Any, policy: Policy, where: str, source: str) -> RuleSettings:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: [{where}.rules] must be a table")
    known = [f.name for f in fields(RuleSettings)]
    rules = policy.rules
    for rule_name, overrides in raw.items():
        key = f"{where}.rules.{rule_name}"
        if rule_name not in known:
            raise PolicyError(f"{source}: unknown rule {key!r} (rules: {', '.join(known)})")
        if rule_name in NETWORK_RULES:
            raise PolicyError(
                f"{source}: {key}: {rule_name} is keyed by IP, not by account;"
                " classes cannot override it"
            )
        if not isinstance(overrides, dict):
            raise PolicyError(f"{source}: [{key}] must be a table")
        base = getattr(rules, rule_name)
        for knob in overrides:
            if knob in SHARED_KNOBS:
                raise PolicyError(
                    f"{source}: {key}.{knob} cannot be set per class: it shapes state that"
                    " every account shares; set it in [rules."
                    f"{rule_name}]"
                )
        if overrides.get("enabled") is True and not base.enabled:
            raise PolicyError(
                f"{source}: {key}.enabled: rules.{rule_name} is disabled; a class can only"
                " turn a rule off"
            )
        merged_raw = {f.name: getattr(base, f.name) for f in fields(base)}
        merged_raw.update(overrides)
        merged = _build(type(base), merged_raw, key, source)
        _check_rule(rule_name, merged, policy.state, source, f"{where}.rules")
        rules = replace(rules, **{rule_name: merged})
    return rules
