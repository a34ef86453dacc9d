"""Runtime configuration: where the broker is, topic names, the signing key.

One TOML file (``etc/mailwarden.toml`` is the documented example). Every value
has a default so that ``mailwarden`` runs against a local broker with no file;
environment variables override the file for the usual deployment knobs
(``MAILWARDEN_BOOTSTRAP``, ``MAILWARDEN_SIGNING_KEY``, ``MAILWARDEN_POLICY``).
The detection thresholds live in the policy file (``etc/policy.toml``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or holds a wrong value."""


@dataclass(slots=True, frozen=True)
class Topics:
    events: str = "mail.events"
    events_by_ip: str = "mail.events.by-ip"
    alerts: str = "mail.alerts"
    control: str = "mail.control"
    deadletter: str = "mail.deadletter"


@dataclass(slots=True, frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    partitions: int = 4


@dataclass(slots=True, frozen=True)
class Config:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    signing_key: bytes = b""
    policy_path: Path | None = None
    state_dir: Path = Path("var/state")
    host: str | None = None
    timezone: str = "UTC"

    def require_signing_key(self) -> bytes:
        if not self.signing_key:
            raise ConfigError(
                "no signing key: set [signing] key in the config file or MAILWARDEN_SIGNING_KEY"
            )
        return self.signing_key


def _section(raw: dict[str, Any], name: str, cls: type[Any]) -> Any:
    values = raw.get(name, {})
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"[{name}] has unknown keys: {', '.join(sorted(unknown))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{name}]: {exc}") from exc


def load_config(path: str | Path | None = None) -> Config:
    """Read the config file (if any), then apply environment overrides."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {file}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        base = file.resolve().parent
    kafka = _section(raw, "kafka", KafkaSettings)
    topics = _section(raw, "topics", Topics)
    signing = raw.get("signing", {})
    key = str(signing.get("key", "")).encode()
    key_file = signing.get("key_file")
    if key_file:
        key = (base / key_file).read_bytes().strip()
    general = raw.get("mailwarden", {})
    policy = general.get("policy")
    policy_path = (base / policy) if policy else None
    state_dir = base / general.get("state_dir", "var/state")

    env = os.environ
    if env.get("MAILWARDEN_BOOTSTRAP"):
        kafka = KafkaSettings(bootstrap=env["MAILWARDEN_BOOTSTRAP"], partitions=kafka.partitions)
    if env.get("MAILWARDEN_SIGNING_KEY"):
        key = env["MAILWARDEN_SIGNING_KEY"].encode()
    if env.get("MAILWARDEN_POLICY"):
        policy_path = Path(env["MAILWARDEN_POLICY"])
    if env.get("MAILWARDEN_STATE_DIR"):
        state_dir = Path(env["MAILWARDEN_STATE_DIR"])
    return Config(
        kafka=kafka,
        topics=topics,
        signing_key=key,
        policy_path=policy_path,
        state_dir=state_dir,
        host=general.get("host"),
        timezone=general.get("timezone", "UTC"),
    )
