"""Notifications: who is told about which enforcement decision, in what words, signed how.

Two audiences:

- ``user``: the owner of an account that was suspended or must reset its
  password, reached through an *alternate* channel (an SMS or secondary-email
  gateway), because the mailbox itself may be in the attacker's hands;
- ``soc``: the security team's webhooks, for the same commands and, when
  enabled, for alerts at or above a severity.

Only verified commands reach a user: alerts on `mail.alerts` are not signed,
so they go to the SOC only.

Text safety. Templates come from our configuration and are compiled by a
sandboxed jinja2 environment; attacker-controlled text (account names,
reasons) is only ever a variable value. Every ``{{ ... }}`` output is cleaned
before it is written: ANSI escape sequences removed, control and format
characters (CR, LF, NUL, bidi overrides, ...) turned into spaces, whitespace
runs collapsed, and the result cut at ``max_value_chars``. The HTML variant
additionally autoescapes; ``|safe`` cannot bypass either step. So a name such
as ``a\\r\\nBcc: evil@x`` can neither start a new header line in a gateway's
mail nor ``<script>`` run in an HTML view, and ``{{7*7}}`` stays text.

Signatures. Each webhook has its own secret. ``X-Mailwarden-Signature:
sha256=<hex>`` is HMAC-SHA256 over ``"<timestamp>." + body`` where
``timestamp`` is the ``X-Mailwarden-Timestamp`` header (Unix seconds), so a
receiver that checks the timestamp is recent (:func:`verify_signature`)
refuses replays. ``Idempotency-Key`` is the command (or alert) id: the same
decision delivered twice has the same key.

Everything here is pure: times are passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from models.commands import Command

Audience = Literal["user", "soc"]
AUDIENCES: tuple[Audience, ...] = ("user", "soc")

SIGNATURE_HEADER = "X-Mailwarden-Signature"
TIMESTAMP_HEADER = "X-Mailwarden-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "sha256"
# How far a receiver lets a timestamp drift from its clock before it calls the request a replay.
DEFAULT_SIGNATURE_TOLERANCE = 300.0
PAYLOAD_VERSION = 1

NOTIFYING_ACTIONS: frozenset[str] = frozenset(
    {"require_password_reset", "suspend_smtp", "suspend_login"}
)

# The user is told in plain words what happened to the account.
ACTION_TEXT: Mapping[str, str] = {
    "require_password_reset": "you must reset your password",
    "suspend_smtp": "sending mail from your account is suspended",
    "suspend_login": "logging in to your account is suspended",
    "isolate_sender": "mail sent from your account is held for review",
    "block_ip": "an address that attacked your account is blocked",
    "deny_insecure": "logins without encryption are refused",
}

DEFAULT_TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "user.default": {
        "text": (
            "Security notice for {{ account }}: {{ action_text }} until {{ expires_at }}, "
            "because of unusual activity. If this was not you, contact the help desk; "
            "do not reply to this message."
        ),
    },
    "user.require_password_reset": {
        "text": (
            "Security notice for {{ account }}: your password may be known to someone else. "
            "Please set a new one at the self-service portal before {{ expires_at }}. "
            "We will never ask for your password."
        ),
    },
    "soc.default": {
        "text": (
            "[mailwarden] {{ action }} {{ subject_type }} {{ subject }} by rule {{ rule }} "
            "until {{ expires_at }}: {{ reason }} (command {{ id }})"
        ),
    },
    "soc.alert": {
        "text": (
            "[mailwarden] alert {{ rule }} severity {{ severity }} user {{ user }} "
            "source {{ source_ip }}: {{ reason }} (alert {{ id }})"
        ),
    },
}

# Values every command template can use; templates are checked against them when loaded.
SAMPLE_COMMAND_CONTEXT: Mapping[str, Any] = {
    "id": "0123456789abcdef0123456789abcdef",
    "account": "user@example.org",
    "subject": "user@example.org",
    "subject_type": "account",
    "action": "suspend_smtp",
    "action_text": ACTION_TEXT["suspend_smtp"],
    "rule": "smtp_burst",
    "reason": "120 messages in 600 s",
    "issued_at": "2026-01-01T00:00:00+00:00",
    "expires_at": "2026-01-01T01:00:00+00:00",
}
SAMPLE_ALERT_CONTEXT: Mapping[str, Any] = {
    "id": "0123456789abcdef0123456789abcdef",
    "rule": "password_spray",
    "severity": 73,
    "reason": "40 accounts failed from one address in 600 s",
    "user": "user@example.org",
    "source_ip": "203.0.113.7",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "category": "authentication",
}

_ANSI_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
# Control, format (bidi overrides, zero-width), surrogate, line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
ELLIPSIS = "…"


class NotificationError(ValueError):
    """A notification setting or template is wrong, or a record cannot be rendered."""


class InvalidAlert(NotificationError):
    """A record on `mail.alerts` that is not an alert this module can read."""


class SignatureError(ValueError):
    """A webhook request whose signature or timestamp does not check out."""


def clean_value(value: object, max_chars: int) -> str:
    """``value`` as one line of inert text of at most ``max_chars`` characters."""
    if value is None:
        return ""
    text = _ANSI_SEQUENCE.sub("", str(value))
    text = "".join(" " if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
    text = " ".join(text.split())
    if len(text) > max_chars:
        text = text[: max_chars - 1] + ELLIPSIS
    return text


def _template_names() -> frozenset[str]:
    names = {f"{audience}.{name}" for audience in AUDIENCES for name in (*ACTION_TEXT, "default")}
    return frozenset({*names, "soc.alert"})


def _environment(*, html: bool, max_value_chars: int) -> SandboxedEnvironment:
    def finalize(value: object) -> str:
        return clean_value(value, max_value_chars)

    # The sandbox keeps a template slip (or a bad edit) away from Python internals.
    return SandboxedEnvironment(
        autoescape=html,
        undefined=StrictUndefined,
        finalize=finalize,
        keep_trailing_newline=False,
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    html: str | None = None


@dataclass(frozen=True, slots=True)
class _Compiled:
    text: Template
    html: Template | None


class Templates:
    """Compiled templates named `<audience>.<action>`, `<audience>.default` or `soc.alert`."""

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, str]],
        *,
        max_value_chars: int,
        max_text_chars: int,
    ) -> None:
        self.max_text_chars = max_text_chars
        text_env = _environment(html=False, max_value_chars=max_value_chars)
        html_env = _environment(html=True, max_value_chars=max_value_chars)
        self._compiled: dict[str, _Compiled] = {}
        for key, source in sources.items():
            if key not in _template_names():
                raise NotificationError(
                    f"template {key!r}: name it <user|soc>.<action>, <user|soc>.default or "
                    "soc.alert"
                )
            unknown = set(source) - {"text", "html"}
            if unknown or "text" not in source:
                raise NotificationError(f"template {key!r} needs `text` and may have `html` only")
            try:
                compiled = _Compiled(
                    text=text_env.from_string(source["text"]),
                    html=html_env.from_string(source["html"]) if "html" in source else None,
                )
            except TemplateError as exc:
                raise NotificationError(f"template {key!r}: {exc}") from exc
            self._compiled[key] = compiled
        for audience in AUDIENCES:
            if f"{audience}.default" not in self._compiled:
                raise NotificationError(f"no {audience}.default template")
        if "soc.alert" not in self._compiled:
            raise NotificationError("no soc.alert template")
        self._check_against_samples()

    def _check_against_samples(self) -> None:
        """Render each template once, so a misspelt variable fails at start-up, not at 3 a.m."""
        for key in self._compiled:
            sample = SAMPLE_ALERT_CONTEXT if key == "soc.alert" else SAMPLE_COMMAND_CONTEXT
            self._render_key(key, sample)

    def names(self) -> list[str]:
        return sorted(self._compiled)

    def render(self, audience: Audience, action: str, context: Mapping[str, Any]) -> Rendered:
        """The message for ``action`` (or ``"alert"``), else the audience's default."""
        key = f"{audience}.{action}"
        if key not in self._compiled:
            key = f"{audience}.default"
        return self._render_key(key, context)

    def _render_key(self, key: str, context: Mapping[str, Any]) -> Rendered:
        compiled = self._compiled[key]
        try:
            text = compiled.text.render(context)
            html = compiled.html.render(context) if compiled.html is not None else None
        except TemplateError as exc:
            raise NotificationError(f"template {key!r}: {exc}") from exc
        text = text.strip()
        if len(text) > self.max_text_chars:
            text = text[: self.max_text_chars - 1] + ELLIPSIS
        return Rendered(text=text, html=html)


@dataclass(frozen=True, slots=True)
class NotificationPolicy:
    """Which decisions notify whom, and the words used. Built by :func:`notification_policy`."""

    templates: Templates
    user_actions: frozenset[str] = NOTIFYING_ACTIONS
    soc_actions: frozenset[str] = NOTIFYING_ACTIONS
    notify_alerts: bool = False
    alert_min_severity: int = 73
    channel_hint: str = "sms"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one audience; ``id`` is the command or alert id (the idempotency key)."""

    id: str
    audience: Audience
    payload: dict[str, Any]

    def body(self) -> bytes:
        return orjson.dumps(self.payload, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a record asks for: notifications, or the reason it asks for none."""

    notifications: tuple[Notification, ...] = ()
    skipped: str | None = None


POLICY_KEYS = frozenset(
    {
        "user_actions",
        "soc_actions",
        "notify_alerts",
        "alert_min_severity",
        "channel_hint",
        "max_value_chars",
        "max_text_chars",
        "templates",
    }
)


def notification_policy(section: Mapping[str, Any]) -> NotificationPolicy:
    """Validate the ``[notifier]`` table of the notifier config; defaults for what it omits."""
    unknown = set(section) - POLICY_KEYS
    if unknown:
        raise NotificationError(f"[notifier] has unknown keys: {', '.join(sorted(unknown))}")
    user_actions = _actions(section, "user_actions")
    soc_actions = _actions(section, "soc_actions")
    notify_alerts = section.get("notify_alerts", False)
    if not isinstance(notify_alerts, bool):
        raise NotificationError("[notifier] notify_alerts must be true or false")
    severity = _positive_int(section, "alert_min_severity", 73, allow_zero=True)
    hint = section.get("channel_hint", "sms")
    if not isinstance(hint, str) or not hint:
        raise NotificationError("[notifier] channel_hint must be a non-empty string")
    max_value_chars = _positive_int(section, "max_value_chars", 128)
    max_text_chars = _positive_int(section, "max_text_chars", 1000)
    sources = {**DEFAULT_TEMPLATES, **_template_sources(section.get("templates", {}))}
    templates = Templates(sources, max_value_chars=max_value_chars, max_text_chars=max_text_chars)
    return NotificationPolicy(
        templates=templates,
        user_actions=user_actions,
        soc_actions=soc_actions,
        notify_alerts=notify_alerts,
        alert_min_severity=severity,
        channel_hint=hint,
    )


def _actions(section: Mapping[str, Any], name: str) -> frozenset[str]:
    values = section.get(name, sorted(NOTIFYING_ACTIONS))
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise NotificationError(f"[notifier] {name} must be a list of action names")
    unknown = set(values) - set(ACTION_TEXT)
    if unknown:
        raise NotificationError(
            f"[notifier] {name} names unknown actions: {', '.join(sorted(unknown))}"
        )
    return frozenset(values)


def _positive_int(
    section: Mapping[str, Any], name: str, default: int, *, allow_zero: bool = False
) -> int:
    value = section.get(name, default)
    lowest = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise NotificationError(f"[notifier] {name} must be an integer >= {lowest}, not {value!r}")
    return value


def _template_sources(raw: object) -> dict[str, dict[str, str]]:
    """``[notifier.templates.<audience>.<name>]`` tables, flattened to ``"<audience>.<name>"``."""
    if not isinstance(raw, dict):
        raise NotificationError("[notifier.templates] must be a table")
    sources: dict[str, dict[str, str]] = {}
    for audience, named in raw.items():
        if audience not in AUDIENCES or not isinstance(named, dict):
            raise NotificationError(
                f"[notifier.templates.{audience}]: the audiences are {', '.join(AUDIENCES)}"
            )
        for name, source in named.items():
            where = f"notifier.templates.{audience}.{name}"
            if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
                raise NotificationError(f"[{where}] must be a table of strings (text, html)")
            sources[f"{audience}.{name}"] = dict(source)
    return sources


def command_context(command: Command) -> dict[str, Any]:
    """Template variables for a command; the raw values, cleaned when rendered."""
    return {
        "id": command.id,
        "account": command.subject if command.subject_type == "account" else None,
        "subject": command.subject,
        "subject_type": command.subject_type,
        "action": command.action,
        "action_text": ACTION_TEXT.get(command.action, command.action),
        "rule": command.rule,
        "reason": command.reason,
        "issued_at": command.issued_at,
        "expires_at": command.expires_at,
    }


def plan_command(command: Command, policy: NotificationPolicy, now: float) -> Plan:
    """The notifications a verified command asks for at wall-clock time ``now``.

    Dry-run commands, releases and commands already expired (read back from
    the topic's history) notify nobody.
    """
    if command.dry_run:
        return Plan(skipped="dry_run")
    if command.action == "release":
        return Plan(skipped="release")
    if command.expires_epoch <= now:
        return Plan(skipped="expired")
    context = command_context(command)
    notifications: list[Notification] = []
    if command.action in policy.user_actions and command.subject_type == "account":
        rendered = policy.templates.render("user", command.action, context)
        payload: dict[str, Any] = {
            "type": "notification",
            "version": PAYLOAD_VERSION,
            "audience": "user",
            "id": command.id,
            "account": command.subject,
            "channel_hint": policy.channel_hint,
            "action": command.action,
            "expires_at": command.expires_at,
            "text": rendered.text,
        }
        if rendered.html is not None:
            payload["html"] = rendered.html
        notifications.append(Notification(command.id, "user", payload))
    if command.action in policy.soc_actions:
        rendered = policy.templates.render("soc", command.action, context)
        notifications.append(
            Notification(
                command.id,
                "soc",
                _soc_payload(command.id, "command", command.to_dict(), rendered),
            )
        )
    if not notifications:
        return Plan(skipped="not_notified")
    return Plan(notifications=tuple(notifications))


def plan_alert(raw: bytes, policy: NotificationPolicy) -> Plan:
    """The SOC notification an alert from `mail.alerts` asks for, if any.

    Raises :class:`InvalidAlert` when the record is not an alert, and
    :class:`NotificationError` when its template cannot render it.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidAlert(f"alert is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") != "alert":
        raise InvalidAlert("not an alert object")
    event = doc.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise InvalidAlert("alert has no event.id")
    extra = doc.get("mailwarden")
    if isinstance(extra, dict) and extra.get("dry_run") is True:
        return Plan(skipped="dry_run")
    severity = event.get("severity", 0)
    if isinstance(severity, bool) or not isinstance(severity, int | float):
        raise InvalidAlert(f"alert severity is {severity!r}, not a number")
    if not policy.notify_alerts or severity < policy.alert_min_severity:
        return Plan(skipped="below_severity" if policy.notify_alerts else "not_notified")
    alert_id: str = event["id"]
    rendered = policy.templates.render("soc", "alert", alert_context(doc))
    return Plan(
        notifications=(
            Notification(alert_id, "soc", _soc_payload(alert_id, "alert", doc, rendered)),
        )
    )


def alert_context(doc: Mapping[str, Any]) -> dict[str, Any]:
    def nested(*path: str) -> Any:
        value: Any = doc
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value

    categories = nested("event", "category")
    return {
        "id": nested("event", "id"),
        "rule": nested("rule", "name"),
        "severity": nested("event", "severity"),
        "reason": nested("event", "reason"),
        "user": nested("user", "name"),
        "source_ip": nested("source", "ip"),
        "timestamp": doc.get("@timestamp"),
        "category": ", ".join(map(str, categories)) if isinstance(categories, list) else categories,
    }


def _soc_payload(
    record_id: str, kind: str, record: dict[str, Any], rendered: Rendered
) -> dict[str, Any]:
    # `text` is safe to show; the record itself is raw data, for machines.
    return {
        "type": "notification",
        "version": PAYLOAD_VERSION,
        "audience": "soc",
        "id": record_id,
        "kind": kind,
        "text": rendered.text,
        kind: record,
    }


def signature_for(body: bytes, secret: bytes, timestamp: int) -> str:
    """The ``X-Mailwarden-Signature`` value: HMAC-SHA256 over ``"<timestamp>." + body``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={mac.hexdigest()}"


def request_headers(
    notification: Notification, body: bytes, secret: bytes, timestamp: int
) -> dict[str, str]:
    """Headers of one delivery attempt; each attempt is signed afresh with its own timestamp."""
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: notification.id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_for(body, secret, timestamp),
    }


def verify_signature(
    body: bytes,
    headers: Mapping[str, str] | Callable[[str], str | None],
    secret: bytes,
    now: float,
    tolerance: float = DEFAULT_SIGNATURE_TOLERANCE,
) -> int:
    """What a receiver runs: check the signature and that the timestamp is recent.

    ``headers`` is a case-insensitive mapping (or its ``get``). Returns the
    timestamp; raises :class:`SignatureError` with the reason.
    """
    get = headers if callable(headers) else headers.get
    stamp, signed = get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER)
    if not stamp or not signed:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    if not stamp.isascii() or not stamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is more than {tolerance:.0f} s from now")
    if not hmac.compare_digest(signed, signature_for(body, secret, timestamp)):
        raise SignatureError("signature does not match")
    return timestamp
