"""The detection policy: which rules run, their thresholds, allowlists, dry run.

Read from TOML (``etc/policy.toml`` documents every knob and its default) by
:func:`load_policy`. Every table maps onto one frozen dataclass; a key this
version does not know, a value of the wrong type or out of range is refused
with an error naming the file and the key, because a typo in a threshold
must not silently fall back to a default. Durations and windows are whole
seconds of event time.

The signing key is not here: it belongs to the runtime configuration
(``mailwarden/config.py``), which is kept apart from the tunable policy.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Protocol versions in increasing order, as Postfix and Dovecot log them.
TLS_VERSIONS: tuple[str, ...] = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


class PolicyError(ValueError):
    """The policy file is missing, unreadable, or holds an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class EnforcementSettings:
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StateSettings:
    max_keys: int = 1_000_000
    distinct_cap: int = 256


@dataclass(frozen=True, slots=True)
class AllowlistSettings:
    ips: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    alert: bool = True


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
class BruteForceSettings:
    enabled: bool = True
    failures: int = 20
    window: int = 600
    buckets: int = 10
    quiet: int = 3600


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
    window: int = 600
    buckets: int = 10
    duration: int = 86400


@dataclass(frozen=True, slots=True)
class LoginIpSpreadSettings:
    enabled: bool = True
    ips: int = 10
    window: int = 1800
    buckets: int = 6
    quiet: int = 3600


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
    brute_force: BruteForceSettings = field(default_factory=BruteForceSettings)
    bounce_storm: BounceStormSettings = field(default_factory=BounceStormSettings)
    credential_stuffing: CredentialStuffingSettings = field(
        default_factory=CredentialStuffingSettings
    )
    login_ip_spread: LoginIpSpreadSettings = field(default_factory=LoginIpSpreadSettings)
    insecure_auth: InsecureAuthSettings = field(default_factory=InsecureAuthSettings)


class Allowlist:
    """Subjects that are never acted on: IP addresses or networks, and accounts.

    Accounts compare case-insensitively; an IP string that is not an address
    is never allowlisted.
    """

    __slots__ = ("_accounts", "_networks")

    def __init__(self, ips: tuple[str, ...], accounts: tuple[str, ...]) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(ip, strict=False) for ip in ips
        )
        self._accounts = frozenset(account.casefold() for account in accounts)

    def has_ip(self, ip: str) -> bool:
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def has_account(self, account: str) -> bool:
        return account.casefold() in self._accounts


@dataclass(frozen=True, slots=True)
class Policy:
    enforcement: EnforcementSettings = field(default_factory=EnforcementSettings)
    state: StateSettings = field(default_factory=StateSettings)
    allowlist: AllowlistSettings = field(default_factory=AllowlistSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)

    @property
    def dry_run(self) -> bool:
        return self.enforcement.dry_run

    def allowlist_matcher(self) -> Allowlist:
        return Allowlist(self.allowlist.ips, self.allowlist.accounts)


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
    policy: Policy = _build(Policy, raw, "", source)
    _check(policy, source)
    return policy


def _build(cls: type[Any], raw: Any, where: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: [{where}] must be a table")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        place = f"[{where}]" if where else "top level"
        raise PolicyError(
            f"{source}: unknown key {_dotted(where, unknown[0])!r} at {place}"
            f" (known: {', '.join(names)})"
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


def _check(policy: Policy, source: str) -> None:
    def require(ok: bool, key: str, message: str, value: Any) -> None:
        if not ok:
            raise PolicyError(f"{source}: {key} {message}, got {value!r}")

    state = policy.state
    require(state.max_keys >= 1, "state.max_keys", "must be at least 1", state.max_keys)
    require(state.distinct_cap >= 1, "state.distinct_cap", "must be at least 1", state.distinct_cap)
    for ip in policy.allowlist.ips:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise PolicyError(
                f"{source}: allowlist.ips holds {ip!r}, which is not an IP address or network"
            ) from None

    for rule in fields(policy.rules):
        settings = getattr(policy.rules, rule.name)
        prefix = f"rules.{rule.name}"
        for knob in fields(settings):
            value = getattr(settings, knob.name)
            if knob.name == "min_failure_ratio":
                require(value >= 0, f"{prefix}.{knob.name}", "must not be negative", value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                require(value > 0, f"{prefix}.{knob.name}", "must be positive", value)
        if hasattr(settings, "window"):
            window, buckets = settings.window, settings.buckets
            require(
                window % buckets == 0,
                f"{prefix}.window",
                f"must be a multiple of {prefix}.buckets ({buckets})",
                window,
            )
    rules = policy.rules
    for key, value in (
        ("rules.password_spray.accounts", rules.password_spray.accounts),
        ("rules.credential_stuffing.failed_accounts", rules.credential_stuffing.failed_accounts),
        ("rules.login_ip_spread.ips", rules.login_ip_spread.ips),
    ):
        require(
            value <= state.distinct_cap,
            key,
            f"must not exceed state.distinct_cap ({state.distinct_cap})",
            value,
        )
    require(
        rules.insecure_auth.min_tls in TLS_VERSIONS,
        "rules.insecure_auth.min_tls",
        f"must be one of {', '.join(TLS_VERSIONS)}",
        rules.insecure_auth.min_tls,
    )
    for key, value in (
        ("rules.bounce_storm.ratio", rules.bounce_storm.ratio),
        ("rules.password_spray.min_failure_ratio", rules.password_spray.min_failure_ratio),
        (
            "rules.credential_stuffing.min_failure_ratio",
            rules.credential_stuffing.min_failure_ratio,
        ),
    ):
        require(value <= 1.0, key, "must be at most 1", value)
