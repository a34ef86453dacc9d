"""Notifications: which decisions notify whom, safe rendering of hostile names, signatures."""

from __future__ import annotations

import hashlib
import hmac
import random
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.config import ConfigError
from models.alerts import Alert
from models.commands import Command, new_command
from models.notification import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidAlert,
    Notification,
    NotificationError,
    NotificationPolicy,
    SignatureError,
    clean_value,
    notification_policy,
    plan_alert,
    plan_command,
    request_headers,
    signature_for,
    verify_signature,
)
from streams.notifier import (
    DeliveredStore,
    SettledOffsets,
    backoff_delay,
    notifier_settings,
    record_outcome,
    retry_after_seconds,
    status_verdict,
)
from streams.notifier_metrics import NotifierMetrics, is_loopback

REPO = Path(__file__).resolve().parents[2]
KEY = b"unit-test-signing-key"
T0 = 1_790_000_000.0
HOSTILE_NAMES = [
    "<script>alert(1)</script>@x",
    "{{7*7}}@x",
    "a\r\nBcc: evil@x",
    "\x1b[2J\x1b]0;owned\x07ansi@x",
    "rtl\u202egnp.exe@x",
    "nul\x00byte@x",
    "x" * 10_000 + "@x",
]
HTML_TEMPLATES = {
    "user": {"default": {"text": "Notice for {{ account }}.", "html": "<p>{{ account }}</p>"}}
}


def command(
    subject: str = "victim@example.org",
    action: str = "suspend_smtp",
    *,
    subject_type: str = "account",
    dry_run: bool = False,
    duration: float = 3600.0,
    reason: str = "120 messages in 600 s",
) -> Command:
    return new_command(
        action=action,
        subject_type=subject_type,
        subject=subject,
        rule="smtp_burst",
        reason=reason,
        issued_epoch=T0,
        duration=duration,
        key=KEY,
        dry_run=dry_run,
    )


def policy(**section: Any) -> NotificationPolicy:
    return notification_policy(section)


# Compiled once: hypothesis renders hundreds of names with it.
HTML_POLICY = policy(templates=HTML_TEMPLATES)


def user_message(plan_notifications: tuple[Notification, ...]) -> dict[str, Any]:
    [user] = [n for n in plan_notifications if n.audience == "user"]
    return user.payload


# --------------------------------------------------------------------------- who is notified


def test_a_suspension_notifies_the_account_owner_and_the_soc() -> None:
    cmd = command()
    plan = plan_command(cmd, policy(channel_hint="secondary-email"), now=T0 + 1)
    assert plan.skipped is None
    assert [n.audience for n in plan.notifications] == ["user", "soc"]
    assert all(n.id == cmd.id for n in plan.notifications)
    user = user_message(plan.notifications)
    assert user["account"] == "victim@example.org"
    assert user["channel_hint"] == "secondary-email"
    assert user["action"] == "suspend_smtp"
    assert "victim@example.org" in user["text"]
    assert "suspended" in user["text"]
    soc = plan.notifications[1].payload
    assert soc["kind"] == "command"
    assert soc["command"] == cmd.to_dict()
    assert "smtp_burst" in soc["text"]


def test_a_password_reset_uses_its_own_template() -> None:
    plan = plan_command(command(action="require_password_reset"), policy(), now=T0)
    assert "password" in user_message(plan.notifications)["text"]


@pytest.mark.parametrize(
    ("cmd", "skipped"),
    [
        (command(dry_run=True), "dry_run"),
        (command(duration=10.0), "expired"),
        (command("203.0.113.7", "block_ip", subject_type="ip"), "not_notified"),
        (command(action="isolate_sender"), "not_notified"),
    ],
)
def test_commands_that_notify_nobody(cmd: Command, skipped: str) -> None:
    plan = plan_command(cmd, policy(), now=T0 + 60)
    assert plan.notifications == ()
    assert plan.skipped == skipped


def test_a_release_notifies_nobody() -> None:
    release = new_command(
        action="release",
        subject_type="account",
        subject="victim@example.org",
        rule="operator",
        reason="cleared",
        issued_epoch=T0,
        duration=60,
        key=KEY,
        releases="suspend_smtp",
    )
    assert plan_command(release, policy(), now=T0).skipped == "release"


def test_the_action_lists_choose_the_audiences() -> None:
    chosen = policy(user_actions=[], soc_actions=["block_ip"])
    assert plan_command(command(), chosen, now=T0).skipped == "not_notified"
    blocked = plan_command(command("203.0.113.7", "block_ip", subject_type="ip"), chosen, now=T0)
    assert [n.audience for n in blocked.notifications] == ["soc"]


def alert_json(severity: int = 73, *, dry_run: bool = False, user: str = "victim@x") -> bytes:
    alert = Alert(
        rule="password_spray",
        epoch=T0,
        category="authentication",
        outcome="failure",
        severity=severity,
        reason="40 accounts failed",
        user=user,
        source_ip="203.0.113.7",
        dry_run=dry_run,
    )
    return alert.to_json()


def test_alerts_reach_the_soc_only_when_enabled_and_severe_enough() -> None:
    enabled = policy(notify_alerts=True, alert_min_severity=73)
    [notification] = plan_alert(alert_json(99), enabled).notifications
    assert notification.audience == "soc"
    assert notification.id == orjson.loads(alert_json(99))["event"]["id"]
    assert notification.payload["alert"]["rule"]["name"] == "password_spray"
    assert "password_spray" in notification.payload["text"]
    assert plan_alert(alert_json(47), enabled).skipped == "below_severity"
    assert plan_alert(alert_json(99, dry_run=True), enabled).skipped == "dry_run"
    assert plan_alert(alert_json(99), policy()).skipped == "not_notified"


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"type": "command"}', b'{"type": "alert", "event": {}}']
)
def test_records_that_are_not_alerts_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidAlert):
        plan_alert(raw, policy(notify_alerts=True))


# --------------------------------------------------------------------------- hostile text


def has_unsafe_characters(text: str) -> bool:
    return any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for c in text)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_account_names_are_inert_in_plain_text(name: str) -> None:
    plan = plan_command(command(name, "require_password_reset"), policy(), now=T0)
    user = user_message(plan.notifications)
    soc = plan.notifications[1].payload
    for text in (user["text"], soc["text"]):
        assert not has_unsafe_characters(text)
        assert "\x1b" not in text
        assert len(text) <= 1000
    # The gateway still gets the exact account to look up; JSON keeps it data.
    assert user["account"] == name
    assert orjson.loads(plan.notifications[0].body())["account"] == name


def test_a_header_injection_attempt_stays_on_one_line() -> None:
    plan = plan_command(command("a\r\nBcc: evil@x"), policy(), now=T0)
    text = user_message(plan.notifications)["text"]
    assert "a Bcc: evil@x" in text
    assert not any(line.startswith("Bcc:") for line in text.splitlines())


def test_template_syntax_in_a_name_is_not_evaluated() -> None:
    plan = plan_command(command("{{7*7}}@x"), policy(), now=T0)
    text = user_message(plan.notifications)["text"]
    assert "{{7*7}}@x" in text
    assert "49@x" not in text


def test_long_values_are_cut_with_an_ellipsis() -> None:
    long_name = "x" * 10_000 + "@x"
    plan = plan_command(command(long_name), policy(max_value_chars=40), now=T0)
    text = user_message(plan.notifications)["text"]
    assert "x" * 39 + "…" in text
    assert "x" * 40 not in text


def test_html_is_autoescaped_and_safe_cannot_bypass_it() -> None:
    templates = {
        "user": {"default": {"text": "{{ account }}", "html": "<p>{{ account|safe }}</p>"}}
    }
    plan = plan_command(command("<script>alert(1)</script>@x"), policy(templates=templates), T0)
    html = user_message(plan.notifications)["html"]
    assert html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;@x</p>"


def test_html_of_a_header_injection_attempt_has_no_line_break() -> None:
    plan = plan_command(command("a\r\nBcc: evil@x"), policy(templates=HTML_TEMPLATES), T0)
    assert user_message(plan.notifications)["html"] == "<p>a Bcc: evil@x</p>"


@given(st.text(max_size=400))
def test_any_name_renders_to_one_clean_bounded_html_value(name: str) -> None:
    plan = plan_command(command(name or "x"), HTML_POLICY, T0)
    user = user_message(plan.notifications)
    assert user["html"].count("<") == 2
    assert not has_unsafe_characters(user["text"])
    assert len(user["html"]) <= len("<p></p>") + 128 * len("&#34;")


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_clean_value_output_is_one_bounded_line(value: str, limit: int) -> None:
    cleaned = clean_value(value, limit)
    assert len(cleaned) <= limit
    assert not has_unsafe_characters(cleaned)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned


def test_clean_value_removes_whole_escape_sequences() -> None:
    assert clean_value("\x1b[31mred\x1b[0m \x1b]8;;http://evil\x1b\\link", 100) == "red link"
    assert clean_value(None, 10) == ""


# --------------------------------------------------------------------------- templates from config


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"templates": {"user": {"default": {"text": "{{ acount }}"}}}}, "acount"),
        ({"templates": {"user": {"default": {"text": "{% if %}"}}}}, "user.default"),
        ({"templates": {"user": {"default": {"html": "<p></p>"}}}}, "needs `text`"),
        ({"templates": {"ops": {"default": {"text": "x"}}}}, "audiences"),
        ({"templates": {"soc": {"suspend_stmp": {"text": "x"}}}}, "suspend_stmp"),
        ({"templates": {"soc": {"alert": {"text": "{{ account }}"}}}}, "account"),
        ({"user_actions": ["suspend_everything"]}, "unknown actions"),
        ({"max_value_chars": 0}, "max_value_chars"),
        ({"notify_alerts": "yes"}, "notify_alerts"),
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_bad_settings_fail_when_loaded(section: dict[str, Any], message: str) -> None:
    with pytest.raises(NotificationError, match=message):
        notification_policy(section)


def test_a_value_the_template_cannot_handle_is_an_error_not_a_silent_message() -> None:
    domain_only = {"user": {"default": {"text": "Account at {{ account.split('@')[1] }}"}}}
    chosen = notification_policy({"templates": domain_only})
    assert "example.org" in user_message(plan_command(command(), chosen, T0).notifications)["text"]
    with pytest.raises(NotificationError, match=r"user\.default"):
        plan_command(command("no-at-sign"), chosen, T0)


def test_templates_cannot_reach_python_internals() -> None:
    sneaky = {"user": {"default": {"text": "{{ account.__class__.__mro__ }}"}}}
    with pytest.raises(NotificationError, match="unsafe"):
        notification_policy({"templates": sneaky})


def test_the_example_config_is_valid_and_renders() -> None:
    raw = tomllib.loads((REPO / "etc" / "notifier.toml").read_text(encoding="utf-8"))
    settings = notifier_settings(raw, REPO / "etc")
    assert [e.name for e in settings.endpoints] == ["user", "siem", "chatops"]
    plan = plan_command(command(action="require_password_reset"), settings.policy, T0)
    assert "<b>victim@example.org</b>" in user_message(plan.notifications)["html"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user": {"url": "ftp://x/", "secret": "s" * 16}}, "http"),
        ({"user": {"url": "https://x/"}}, "exactly one of secret"),
        ({"user": {"url": "https://x/", "secret": "short"}}, "16 bytes"),
        ({"soc": [{"name": "a b", "url": "https://x/", "secret": "s" * 16}]}, "name"),
        ({"delivery": {"max_attempts": 0}}, "max_attempts"),
        ({"delivery": {"queue_size": 2.5}}, "integer"),
        ({"user": None, "soc": []}, "nothing to notify"),
    ],
)
def test_bad_notifier_configs_are_refused(change: dict[str, Any], message: str) -> None:
    raw: dict[str, Any] = {"user": {"url": "https://gw.example/", "secret": "s" * 16}, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        notifier_settings(raw, REPO)


# --------------------------------------------------------------------------- signatures


def signed(body: bytes, secret: bytes, timestamp: int) -> dict[str, str]:
    notification = Notification("c0ffee", "soc", {"x": 1})
    return request_headers(notification, body, secret, timestamp)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 16, b"1790000000." + body, hashlib.sha256).hexdigest()
    assert signature_for(body, b"k" * 16, 1_790_000_000) == f"sha256={expected}"


def test_headers_carry_the_idempotency_key_and_a_verifiable_signature() -> None:
    body = b'{"x":1}'
    headers = signed(body, b"s" * 16, 1_790_000_000)
    assert headers[IDEMPOTENCY_HEADER] == "c0ffee"
    assert headers[TIMESTAMP_HEADER] == "1790000000"
    assert verify_signature(body, headers, b"s" * 16, now=1_790_000_030) == 1_790_000_000


@pytest.mark.parametrize(
    ("body", "secret", "now", "tamper", "message"),
    [
        (b'{"x":2}', b"s" * 16, 1_790_000_000, {}, "does not match"),
        (b'{"x":1}', b"t" * 16, 1_790_000_000, {}, "does not match"),
        (b'{"x":1}', b"s" * 16, 1_790_000_301, {}, "from now"),
        (b'{"x":1}', b"s" * 16, 1_790_000_000, {TIMESTAMP_HEADER: "1790000001"}, "does not match"),
        (b'{"x":1}', b"s" * 16, 1_790_000_000, {TIMESTAMP_HEADER: "-5"}, "Unix seconds"),
        (b'{"x":1}', b"s" * 16, 1_790_000_000, {SIGNATURE_HEADER: ""}, "missing"),
    ],
)
def test_tampered_stale_or_replayed_requests_fail_verification(
    body: bytes, secret: bytes, now: float, tamper: dict[str, str], message: str
) -> None:
    headers = {**signed(b'{"x":1}', b"s" * 16, 1_790_000_000), **tamper}
    with pytest.raises(SignatureError, match=message):
        verify_signature(body, headers, secret, now=now)


# --------------------------------------------------------------------------- delivery helpers


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "delivered"), (204, "delivered"), (500, "retry"), (503, "retry"), (429, "retry"),
     (400, "final"), (401, "final"), (404, "final"), (301, "final")],
)  # fmt: skip
def test_only_server_errors_and_429_are_retried(status: int, verdict: str) -> None:
    assert status_verdict(status) == verdict


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (20, 30.0)]:
        delays = [backoff_delay(attempt, 1.0, 30.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4


def test_retry_after_is_read_only_when_it_is_seconds() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds(None) is None


def test_the_delivered_store_survives_a_reload_and_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "delivered.jsonl"
    store = DeliveredStore(path, capacity=3)
    for n in range(10):
        store.add(f"user|{n}", "delivered", T0)
    assert len(path.read_bytes().splitlines()) <= 7
    with path.open("ab") as file:
        file.write(b'{"key": "user|torn')
    reloaded = DeliveredStore(path, capacity=3)
    reloaded.load()
    assert [f"user|{n}" in reloaded for n in range(10)] == [False] * 7 + [True] * 3


def test_a_record_holds_its_position_until_its_notifications_settle() -> None:
    tp = TopicPartition("mail.control", 0)
    offsets = SettledOffsets()
    offsets.start_at(tp, 0)
    offsets.read(tp, 0)
    offsets.hold(tp, 0)
    offsets.read(tp, 1)
    assert offsets.positions() == {tp: 0}
    offsets.read(tp, 2)
    offsets.hold(tp, 2)
    offsets.release(tp, 0)
    assert offsets.positions() == {tp: 2}
    assert offsets.pending == 1
    offsets.release(tp, 2)
    assert offsets.positions() == {tp: 3}
    assert offsets.pending == 0


@pytest.mark.parametrize(
    ("queued", "duplicates", "outcome"),
    [(1, 0, "notified"), (1, 1, "notified"), (0, 2, "already_notified"), (0, 0, "no_webhook")],
)
def test_a_record_that_asks_for_notifications_says_what_became_of_it(
    queued: int, duplicates: int, outcome: str
) -> None:
    assert record_outcome(queued, duplicates) == outcome


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.0.2.1", False), ("metrics.example.org", False)],
)  # fmt: skip
def test_only_loopback_metrics_addresses_pass_without_a_warning(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_delivery_series_exist_at_zero_for_every_configured_webhook_only() -> None:
    metrics = NotifierMetrics(["user", "soc-siem"])
    registry = metrics.registry
    for endpoint in ("user", "soc-siem"):
        for result in ("delivered", "retried", "dead_letter"):
            labels = {"endpoint": endpoint, "result": result}
            assert registry.get_sample_value("mailwarden_notifier_deliveries_total", labels) == 0
    assert (
        registry.get_sample_value(
            "mailwarden_notifier_deliveries_total", {"endpoint": "other", "result": "delivered"}
        )
        is None
    )
    metrics.count_settled("soc-siem", "dead_letter", 0.3)
    assert (
        registry.get_sample_value(
            "mailwarden_notifier_delivery_seconds_bucket", {"endpoint": "soc-siem", "le": "0.5"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "mailwarden_notifier_delivery_seconds_bucket", {"endpoint": "soc-siem", "le": "0.25"}
        )
        == 0
    )
