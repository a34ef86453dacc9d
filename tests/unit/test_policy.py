"""Policy loading: defaults, the documented example, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.policy import Policy, PolicyError, load_policy

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
