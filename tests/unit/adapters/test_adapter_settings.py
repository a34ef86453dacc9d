"""The [adapters] section of the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.config import ConfigError, load_config
from streams.adapters.dovecot_policy import basic_authorization
from streams.adapters.settings import AdapterSettings, load_adapter_settings
from streams.adapters.tcp import parse_listen

FULL = """
[signing]
key = "k"

[adapters]
idle_timeout = 60
max_connections = 50
reply_with_rule_reason = true

[adapters.smtp_responses]
suspend_smtp = "HOLD"
block_ip = "DEFER"

[adapters.reply_texts]
block_ip = "access denied, see https://help.example.org/blocked"
deny_insecure = "use TLS, see https://help.example.org/tls"

[adapters.postfix_policy]
listen = "127.0.0.1:20040"
min_tls = "TLSv1.3"

[adapters.socketmap]
listen = "[::1]:20041"
isolation_transport = "isolated:[relay.test]:25"

[adapters.dovecot_policy]
listen = "127.0.0.1:20042"
basic_auth_file = "auth/dovecot.txt"
doveadm = "/usr/local/bin/doveadm"
doveadm_config = "dovecot/dovecot.conf"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailwarden.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_adapter_settings(None)
    assert settings == AdapterSettings()
    assert settings.smtp_responses == {
        "suspend_smtp": "REJECT",
        "suspend_login": "REJECT",
        "block_ip": "REJECT",
    }
    assert settings.replies.texts == {
        "suspend_smtp": "account suspended",
        "suspend_login": "account suspended",
        "block_ip": "client address blocked",
        "deny_insecure": "encryption required",
    }
    assert settings.replies.rule_reason is False
    assert settings.postfix_policy_listen == "127.0.0.1:10040"
    assert settings.postfix_policy_min_tls == "TLSv1.2"
    assert settings.dovecot_authorization is None
    assert settings.kick is not None and settings.kick.doveadm == "doveadm"
    assert settings.kick.config is None


def test_kicking_can_be_turned_off(tmp_path: Path) -> None:
    path = write(tmp_path, "[adapters.dovecot_policy]\nkick_sessions = false\n")
    assert load_adapter_settings(path).kick is None


def test_every_key(tmp_path: Path) -> None:
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "dovecot.txt").write_text("dovecot:s3cret\n")
    path = write(tmp_path, FULL)
    settings = load_adapter_settings(path)
    assert settings.smtp_responses["suspend_smtp"] == "HOLD"
    assert settings.smtp_responses["block_ip"] == "DEFER"
    assert settings.smtp_responses["suspend_login"] == "REJECT"
    assert (
        settings.replies.texts["block_ip"] == "access denied, see https://help.example.org/blocked"
    )
    assert settings.replies.texts["suspend_smtp"] == "account suspended"
    assert settings.replies.texts["deny_insecure"] == "use TLS, see https://help.example.org/tls"
    assert settings.replies.rule_reason is True
    assert (settings.limits.idle_timeout, settings.limits.max_connections) == (60.0, 50)
    assert settings.postfix_policy_listen == "127.0.0.1:20040"
    assert settings.postfix_policy_min_tls == "TLSv1.3"
    assert parse_listen(settings.socketmap_listen) == ("::1", 20041)
    assert settings.isolation_transport == "isolated:[relay.test]:25"
    assert settings.dovecot_authorization == basic_authorization("dovecot:s3cret")
    assert settings.kick is not None
    assert settings.kick.doveadm == "/usr/local/bin/doveadm"
    assert settings.kick.config == tmp_path.resolve() / "dovecot" / "dovecot.conf"
    # The main config loader ignores the section and still reads the rest.
    assert load_config(path).signing_key == b"k"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[adapters]\nlisten = 'x'\n", "unknown keys: listen"),
        ("[adapters.postfix_policy]\nport = 1\n", "unknown keys: port"),
        ("[adapters.postfix_policy]\nmin_tls = 'TLSv2'\n", "min_tls must be one of"),
        ("[adapters.smtp_responses]\nsuspend_smtp = 'BOUNCE'\n", "choose one of"),
        ("[adapters.smtp_responses]\nrelease = 'REJECT'\n", "unknown action"),
        ("[adapters.reply_texts]\nrelease = 'lifted'\n", "unknown action 'release'.*deny_insecure"),
        ('[adapters.reply_texts]\ndeny_insecure = "a\\nb"\n', "deny_insecure must be printable"),
        ("[adapters.reply_texts]\ndeny_insecure = ''\n", "deny_insecure must be a non-empty"),
        ('[adapters.reply_texts]\nblock_ip = "no\\r\\n550 x"\n', "one line"),
        ("[adapters.reply_texts]\nblock_ip = 42\n", "non-empty string"),
        ("[adapters]\nreply_texts = 'blocked'\n", "must be a table"),
        ("[adapters]\nreply_with_rule_reason = 'yes'\n", "true or false"),
        ("[adapters.socketmap]\nlisten = 'localhost'\n", "HOST:PORT"),
        ("[adapters.socketmap]\nisolation_transport = 'isolated'\n", "isolation transport"),
        ("[adapters]\nidle_timeout = 0\n", "must be positive"),
        ("[adapters]\nmax_connections = 'many'\n", "invalid literal"),
        ("[adapters.dovecot_policy]\nbasic_auth_file = 'missing.txt'\n", "cannot read"),
        ("[adapters.dovecot_policy]\nbasic_auth = 'nocolon'\n", "user:password"),
        (
            "[adapters.dovecot_policy]\nbasic_auth = 'a:b'\nbasic_auth_file = 'x'\n",
            "not both",
        ),
        ("adapters = 3\n", "must be a table"),
        ("[adapters.dovecot_policy]\nkick_sessions = 'yes'\n", "true or false"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_adapter_settings(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_adapter_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ["1.2.3.4", ":80", "host:", "host:99999", "host:x"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)
