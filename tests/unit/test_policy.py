"""Policy loading: defaults, the documented example, and clear refusals."""

from __future__ import annotations

import tomllib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from models.policy import Allowlist, ClassIndex, Policy, PolicyError, load_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "etc" / "policy.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_equals_the_built_in_defaults() -> None:
    assert load_policy(EXAMPLE) == load_policy(None) == Policy()


def test_values_are_read_into_their_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [enforcement]
        dry_run = true
        [allowlist]
        ips = ["192.0.2.0/24", "2001:db8::1"]
        accounts = ["Monitor@Example.org"]
        [rules.smtp_burst]
        threshold = 50
        [rules.bounce_storm]
        ratio = 1
        """,
    )
    policy = load_policy(path)
    assert policy.dry_run is True
    assert policy.rules.smtp_burst.threshold == 50
    assert policy.rules.smtp_burst.window == 60
    assert policy.rules.bounce_storm.ratio == 1.0
    allowlist = policy.allowlist_matcher()
    assert allowlist.has_ip("192.0.2.77")
    assert allowlist.has_ip("2001:db8::1")
    assert not allowlist.has_ip("198.51.100.1")
    assert not allowlist.has_ip("not-an-ip")
    assert allowlist.has_account("monitor@example.org")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules.smtp_burst]\nthreshhold = 3\n", "unknown key 'rules.smtp_burst.threshhold'"),
        ("[rules.smtp_brust]\n", "unknown key 'rules.smtp_brust'"),
        ("[rules.smtp_burst]\nthreshold = '30'\n", "rules.smtp_burst.threshold must be an integer"),
        ("[rules.smtp_burst]\nthreshold = 2.5\n", "rules.smtp_burst.threshold must be an integer"),
        ("[rules.smtp_burst]\nenabled = 1\n", "rules.smtp_burst.enabled must be true or false"),
        ("[rules.brute_force]\nfailures = -1\n", "rules.brute_force.failures must be positive"),
        ("[rules.bounce_storm]\nratio = 0\n", "rules.bounce_storm.ratio must be positive"),
        ("[rules.bounce_storm]\nratio = 1.5\n", "rules.bounce_storm.ratio must be at most 1"),
        ("[rules.smtp_burst]\nwindow = 65\n", "rules.smtp_burst.window must be a multiple"),
        ("[rules.password_spray]\naccounts = 300\n", "must not exceed state.distinct_cap"),
        ("[allowlist]\nips = ['10.0.0.0/33']\n", "allowlist.ips holds '10.0.0.0/33'"),
        ("[allowlist]\nips = '10.0.0.1'\n", "allowlist.ips must be a list of strings"),
        ("rules = 3\n", "[rules] must be a table"),
        ("[state]\nmax_keys = 0\n", "state.max_keys must be at least 1"),
        ("[escalation]\nfactor = 0.5\n", "escalation.factor must be at least 1"),
        ("[network]\nipv4_prefix = 33\n", "network.ipv4_prefix must be between 8 and 32"),
        ("[network]\nipv6_prefix = 8\n", "network.ipv6_prefix must be between 16 and 128"),
        ("[nat]\nusers = 500\n", "nat.users must not exceed state.distinct_cap"),
        ("[nat]\nwindow = 1000\nbuckets = 6\n", "nat.window must be a multiple"),
        ("[allowlist]\nsenders = ['newsletter']\n", "allowlist.senders entries must be"),
        ("[geoip]\ncountries = 0\n", "geoip.countries must be positive"),
        (
            "[rules.outbound_volume]\naction = 'block'\n",
            "rules.outbound_volume.action must be one of alert, suspend_smtp, isolate_sender",
        ),
        (
            "[rules.login_ip_spread]\naction = 'suspend_smtp'\n",
            "rules.login_ip_spread.action must be one of alert, suspend_login",
        ),
        ("[rules.recipient_fanout]\nrecipients = 300\n", "must not exceed state.distinct_cap"),
        ("[rules.outbound_volume]\nmad_factor = 0\n", "mad_factor must be positive"),
        ("[classes.bulk]\n", "[classes.bulk] lists no accounts and no domains"),
        ("[classes.bulk]\ndomains = ['x.org']\ncolour = 1\n", "unknown key 'classes.bulk.colour'"),
        (
            "[classes.bulk]\ndomains = ['x.org']\n[classes.bulk.rules.smtp_brust]\n",
            "unknown rule 'classes.bulk.rules.smtp_brust'",
        ),
        (
            "[classes.bulk]\ndomains = ['x.org']\n[classes.bulk.rules.smtp_burst]\nwindow = 120\n",
            "classes.bulk.rules.smtp_burst.window cannot be set per class",
        ),
        (
            "[classes.bulk]\ndomains = ['x.org']\n[classes.bulk.rules.password_spray]\n",
            "password_spray is keyed by IP, not by account",
        ),
        (
            "[classes.bulk]\ndomains = ['x.org']\n[classes.bulk.rules.smtp_burst]\nthreshold = 0\n",
            "classes.bulk.rules.smtp_burst.threshold must be positive",
        ),
        (
            "[classes.bulk]\ndomains = ['x.org']\n"
            "[classes.bulk.rules.smtp_burst]\nthreshhold = 3\n",
            "unknown key 'classes.bulk.rules.smtp_burst.threshhold'",
        ),
        (
            "[rules.smtp_burst]\nenabled = false\n[classes.a]\ndomains = ['x.org']\n"
            "[classes.a.rules.smtp_burst]\nenabled = true\n",
            "a class can only turn a rule off",
        ),
        (
            "[classes.a]\ndomains = ['X.org']\n[classes.b]\ndomains = ['@x.org']\n",
            "domain x.org is in both classes.a and classes.b",
        ),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_and_broken_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "absent.toml")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, "[rules\n"))


def test_every_knob_is_documented_in_the_example() -> None:
    """etc/policy.toml names every table and key of the policy, so it documents them all."""
    written = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    def knobs(settings: Any) -> dict[str, Any]:
        return {
            f.name: knobs(getattr(settings, f.name))
            if is_dataclass(getattr(settings, f.name))
            else None
            for f in fields(settings)
        }

    def keys(table: dict[str, Any]) -> dict[str, Any]:
        return {k: keys(v) if isinstance(v, dict) else None for k, v in table.items()}

    expected = knobs(Policy())
    expected.pop("classes")
    assert keys(written) == expected


def test_classes_override_account_rules_by_account_then_domain(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [rules.smtp_burst]
        threshold = 40
        [classes.lists]
        domains = ["@Lists.Example.org"]
        [classes.lists.rules.smtp_burst]
        threshold = 500
        [classes.lists.rules.outbound_volume]
        action = "alert"
        cold_start_hourly = 5000
        [classes.vip]
        accounts = ["Boss@Lists.Example.org"]
        [classes.vip.rules.smtp_burst]
        enabled = false
        """,
    )
    policy = load_policy(path)
    index = ClassIndex(policy.classes)
    base = policy.rules.smtp_burst
    assert index.pick("a@other.org", base, "smtp_burst") is base
    lists = index.pick("news@lists.example.org", base, "smtp_burst")
    assert (lists.threshold, lists.window) == (500, 60)
    volume = index.pick("news@lists.example.org", policy.rules.outbound_volume, "outbound_volume")
    assert (volume.action, volume.cold_start_hourly, volume.min_hourly) == ("alert", 5000, 50)
    boss = index.pick("boss@lists.example.org", base, "smtp_burst")
    assert boss.enabled is False and boss.threshold == 40  # the class keeps the policy's knobs
    assert index.of("nobody") is None


def test_the_allowlist_matches_prefixes_and_service_senders() -> None:
    allowlist = Allowlist(("192.0.2.10",), (), ("noreply@example.org", "@tickets.example.net"))
    assert allowlist.has_network("192.0.2.0/24")  # holds the allowlisted address
    assert not allowlist.has_network("198.51.100.0/24")
    assert not allowlist.has_network("2001:db8::/64")
    assert allowlist.has_sender("NoReply@Example.org")
    assert allowlist.has_sender("help@tickets.example.net")
    assert not allowlist.has_sender("help@example.net")
    assert not allowlist.has_sender("tickets.example.net")
