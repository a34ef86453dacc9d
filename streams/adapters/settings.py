"""The ``[adapters]`` part of the mailwarden config file.

It lives in the same TOML file as the broker and topic settings
(``mailwarden.config``), which ignores it; every key is optional::

    [adapters]
    idle_timeout = 330          # seconds; longer than Postfix's 300 s max_idle
    max_connections = 1000
    reply_with_rule_reason = false   # true: tell clients the rule's reason (internal relays)

    [adapters.smtp_responses]   # the Postfix verdict per action: REJECT, DEFER, HOLD, DUNNO
    suspend_smtp = "REJECT"
    suspend_login = "REJECT"
    block_ip = "REJECT"

    [adapters.reply_texts]      # what the client is told, followed by " (ref <id>)"
    suspend_smtp = "account suspended"
    suspend_login = "account suspended"
    block_ip = "client address blocked"
    deny_insecure = "encryption required"

    [adapters.postfix_policy]
    listen = "127.0.0.1:10040"
    min_tls = "TLSv1.2"   # deny_insecure: keep equal to the insecure_auth rule's min_tls

    [adapters.socketmap]
    listen = "127.0.0.1:10041"
    isolation_transport = "isolated:"

    [adapters.dovecot_policy]
    listen = "127.0.0.1:10042"
    basic_auth_file = "dovecot-policy.auth"   # one line "user:password"; or basic_auth = "..."
    kick_sessions = true                      # doveadm kick on suspend_login / block_ip
    doveadm = "doveadm"
    doveadm_config = "/etc/dovecot/dovecot.conf"   # passed as doveadm -c; optional

    [adapters.mapfile]                        # see streams/adapters/mapfile.py
    reload_command = ["postfix", "reload"]    # an argv list, never a shell string
    [[adapters.mapfile.outputs]]
    path = "/etc/postfix/mailwarden_client_access"
    format = "postfix-texthash"               # or postfix-cidr, list
    actions = ["block_ip"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailwarden.config import ConfigError
from models.enforcement import (
    DEFAULT_SMTP_RESPONSES,
    MIN_TLS,
    ClientReplies,
    Verdict,
    client_replies,
    smtp_responses,
)
from models.policy import TLS_VERSIONS
from streams.adapters.dovecot_policy import basic_authorization
from streams.adapters.kick import DEFAULT_DOVEADM, KickSettings
from streams.adapters.mapfile import MAPFILE_KEYS, MapfileSettings, mapfile_settings
from streams.adapters.socketmap import DEFAULT_ISOLATION_TRANSPORT, validate_transport
from streams.adapters.tcp import ConnectionLimits, parse_listen

SECTIONS = {
    "": {
        "idle_timeout",
        "max_connections",
        "smtp_responses",
        "reply_texts",
        "reply_with_rule_reason",
    },
    "postfix_policy": {"listen", "min_tls"},
    "socketmap": {"listen", "isolation_transport"},
    "dovecot_policy": {
        "listen",
        "basic_auth",
        "basic_auth_file",
        "kick_sessions",
        "doveadm",
        "doveadm_config",
    },
    "mapfile": set(MAPFILE_KEYS),
}
SUBSECTIONS = frozenset(name for name in SECTIONS if name)


@dataclass(slots=True, frozen=True)
class AdapterSettings:
    smtp_responses: Mapping[str, Verdict] = field(
        default_factory=lambda: dict(DEFAULT_SMTP_RESPONSES)
    )
    replies: ClientReplies = field(default_factory=ClientReplies)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    postfix_policy_listen: str = "127.0.0.1:10040"
    # deny_insecure refuses submission below this TLS version (the rule's min_tls)
    postfix_policy_min_tls: str = MIN_TLS
    socketmap_listen: str = "127.0.0.1:10041"
    dovecot_policy_listen: str = "127.0.0.1:10042"
    isolation_transport: str = DEFAULT_ISOLATION_TRANSPORT
    # The Authorization header Dovecot must send, when set.
    dovecot_authorization: str | None = None
    # How open sessions are ended; None: not at all.
    kick: KickSettings | None = field(default_factory=KickSettings)
    mapfile: MapfileSettings = field(default_factory=MapfileSettings)


def _table(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[adapters.{name}] must be a table")
    return value


def _check_keys(where: str, values: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"[{where}] has unknown keys: {', '.join(sorted(unknown))}")


def adapter_settings(raw: Mapping[str, Any], base: Path) -> AdapterSettings:
    """Validate the ``[adapters]`` table; ``base`` resolves relative file names."""
    section = raw.get("adapters", {})
    if not isinstance(section, dict):
        raise ConfigError("[adapters] must be a table")
    _check_keys("adapters", section, SECTIONS[""] | SUBSECTIONS)
    policy = _table(section, "postfix_policy")
    socketmap = _table(section, "socketmap")
    dovecot = _table(section, "dovecot_policy")
    for name, values in (
        ("postfix_policy", policy),
        ("socketmap", socketmap),
        ("dovecot_policy", dovecot),
    ):
        _check_keys(f"adapters.{name}", values, SECTIONS[name])
    defaults = AdapterSettings()
    try:
        responses = smtp_responses(_table(section, "smtp_responses"))
        replies = _client_replies(section)
        limits = ConnectionLimits(
            idle_timeout=float(section.get("idle_timeout", defaults.limits.idle_timeout)),
            max_connections=int(section.get("max_connections", defaults.limits.max_connections)),
        )
        listens = [
            str(values.get("listen", default))
            for values, default in (
                (policy, defaults.postfix_policy_listen),
                (socketmap, defaults.socketmap_listen),
                (dovecot, defaults.dovecot_policy_listen),
            )
        ]
        for listen in listens:
            parse_listen(listen)
        transport = validate_transport(
            str(socketmap.get("isolation_transport", defaults.isolation_transport))
        )
        min_tls = str(policy.get("min_tls", defaults.postfix_policy_min_tls))
        if min_tls not in TLS_VERSIONS:
            raise ValueError(
                f"postfix_policy.min_tls must be one of {', '.join(TLS_VERSIONS)}: {min_tls!r}"
            )
        authorization = _authorization(dovecot, base)
        kick = _kick_settings(dovecot, base)
        mapfile = mapfile_settings(_table(section, "mapfile"), base)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[adapters]: {exc}") from exc
    if limits.idle_timeout <= 0 or limits.max_connections <= 0:
        raise ConfigError("[adapters] idle_timeout and max_connections must be positive")
    return AdapterSettings(
        smtp_responses=responses,
        replies=replies,
        limits=limits,
        postfix_policy_listen=listens[0],
        postfix_policy_min_tls=min_tls,
        socketmap_listen=listens[1],
        dovecot_policy_listen=listens[2],
        isolation_transport=transport,
        dovecot_authorization=authorization,
        kick=kick,
        mapfile=mapfile,
    )


def _client_replies(section: Mapping[str, Any]) -> ClientReplies:
    rule_reason = section.get("reply_with_rule_reason", False)
    if not isinstance(rule_reason, bool):
        raise ValueError("reply_with_rule_reason must be true or false")
    return client_replies(_table(section, "reply_texts"), rule_reason=rule_reason)


def _kick_settings(dovecot: Mapping[str, Any], base: Path) -> KickSettings | None:
    enabled = dovecot.get("kick_sessions", True)
    if not isinstance(enabled, bool):
        raise ValueError("kick_sessions must be true or false")
    if not enabled:
        return None
    config = dovecot.get("doveadm_config")
    return KickSettings(
        doveadm=str(dovecot.get("doveadm", DEFAULT_DOVEADM)),
        config=base / str(config) if config else None,
    )


def _authorization(dovecot: Mapping[str, Any], base: Path) -> str | None:
    if "basic_auth" in dovecot and "basic_auth_file" in dovecot:
        raise ValueError("set basic_auth or basic_auth_file, not both")
    if "basic_auth_file" in dovecot:
        path = base / str(dovecot["basic_auth_file"])
        try:
            credentials = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read basic_auth_file {path}: {exc}") from exc
        return basic_authorization(credentials)
    if "basic_auth" in dovecot:
        return basic_authorization(str(dovecot["basic_auth"]))
    return None


def load_adapter_settings(path: str | Path | None) -> AdapterSettings:
    """The adapter settings of a config file (all defaults without one)."""
    if path is None:
        return AdapterSettings()
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {file}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return adapter_settings(raw, file.resolve().parent)
