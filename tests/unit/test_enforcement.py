"""ActiveCommands: verification, ordering, expiry, release, and the decisions it gives."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from models.commands import Command, new_command, signature
from models.enforcement import (
    REASON_LIMIT,
    ActiveCommands,
    ClientReplies,
    Decision,
    client_replies,
    normalize_account,
    parse_address,
    sanitize_reason,
    smtp_responses,
)

KEY = b"test-signing-key"
T0 = 1_795_758_000.0
HOUR = 3600.0
# A rule's audit text: what an attacker must not learn from a refusal.
AUDIT_REASON = "30 submissions within 60 s (threshold 30)"


def command(
    action: str,
    subject: str,
    *,
    subject_type: str = "account",
    issued: float = T0,
    duration: float = HOUR,
    reason: str = AUDIT_REASON,
    dry_run: bool = False,
    releases: str | None = None,
    key: bytes = KEY,
) -> Command:
    return new_command(
        action=action,
        subject_type=subject_type,
        subject=subject,
        rule="test_rule",
        reason=reason,
        issued_epoch=issued,
        duration=duration,
        key=key,
        dry_run=dry_run,
        releases=releases,
    )


def release(action: str, subject: str, *, subject_type: str = "account", issued: float) -> Command:
    return command("release", subject, subject_type=subject_type, issued=issued, releases=action)


def feed(active: ActiveCommands, *commands: Command) -> None:
    for cmd in commands:
        active.apply_record(cmd.to_json())


def rule_reason(decision: Decision) -> str:
    """The reason of the command a decision rests on: which command won."""
    assert decision.command is not None, decision
    return decision.command.reason


def test_suspended_account_is_rejected_and_others_pass() -> None:
    active = ActiveCommands(KEY)
    applied = active.apply_record(command("suspend_smtp", "alice@example.org").to_json())
    assert applied is not None and applied.subject == "alice@example.org"
    decision = active.decide_smtp("alice@example.org", "192.0.2.10", T0 + 1)
    assert decision.action == "REJECT"
    assert decision.reply == f"account suspended (ref {applied.id[:8]})"
    assert decision.command == applied
    assert active.decide_smtp("bob@example.org", "192.0.2.10", T0 + 1).action == "DUNNO"
    assert active.stats.applied == 1


def test_accounts_compare_case_insensitively_and_trimmed() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", " Alice@Example.ORG "))
    assert active.decide_smtp("alice@example.org", "", T0).refuses
    assert active.decide_smtp("ALICE@EXAMPLE.ORG\t", "", T0).refuses
    assert normalize_account(" Straße@X ") == "strasse@x"


def test_suspend_login_refuses_smtp_and_dovecot_login() -> None:
    active = ActiveCommands(KEY)
    suspension = command("suspend_login", "carol@example.org")
    feed(active, suspension)
    assert active.decide_smtp("carol@example.org", "192.0.2.1", T0).action == "REJECT"
    login = active.decide_login("Carol@example.org", "192.0.2.1", T0)
    assert login.refuses and login.reply == f"account suspended (ref {suspension.id[:8]})"


def test_suspend_smtp_does_not_refuse_imap_login() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", "alice@example.org"))
    assert not active.decide_login("alice@example.org", "192.0.2.1", T0).refuses


def test_isolate_sender_is_no_policy_objection_but_is_findable() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("isolate_sender", "dave@example.org"))
    assert active.decide_smtp("dave@example.org", "192.0.2.1", T0).action == "DUNNO"
    found = active.account_command("isolate_sender", "DAVE@example.org", T0)
    assert found is not None and found.action == "isolate_sender"


def test_blocked_ip_exact_and_ipv4_mapped() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("block_ip", "203.0.113.7", subject_type="ip"))
    assert active.decide_smtp("", "203.0.113.7", T0).action == "REJECT"
    assert active.decide_smtp("", "::ffff:203.0.113.7", T0).action == "REJECT"
    assert active.decide_smtp("", "203.0.113.8", T0).action == "DUNNO"
    assert active.decide_login("anyone@example.org", "203.0.113.7", T0).refuses
    assert not active.decide_login("anyone@example.org", "203.0.113.8", T0).refuses


def test_ipv6_address_is_normalized() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("block_ip", "2001:DB8:0:0::1", subject_type="ip"))
    assert active.decide_smtp("", "2001:db8::1", T0).refuses
    assert not active.decide_smtp("", "2001:db8::2", T0).refuses


def test_prefixes_contain_the_addresses_they_block() -> None:
    active = ActiveCommands(KEY)
    feed(
        active,
        command("block_ip", "198.51.100.0/24", subject_type="prefix"),
        command("block_ip", "2001:db8:abcd::/48", subject_type="prefix"),
        command("block_ip", "10.1.2.3/16", subject_type="prefix"),  # host bits tolerated
    )
    assert active.decide_smtp("", "198.51.100.200", T0).refuses
    assert not active.decide_smtp("", "198.51.101.1", T0).refuses
    assert active.decide_smtp("", "2001:db8:abcd:1::5", T0).refuses
    assert not active.decide_smtp("", "2001:db8:abce::5", T0).refuses
    assert active.decide_login("x", "10.1.200.1", T0).refuses
    assert not active.decide_smtp("", "not-an-ip", T0).refuses
    assert not active.decide_smtp("", "unknown", T0).refuses


def test_released_prefix_stops_matching() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("block_ip", "198.51.100.0/24", subject_type="prefix"))
    feed(active, release("block_ip", "198.51.100.0/24", subject_type="prefix", issued=T0 + 5))
    assert not active.decide_smtp("", "198.51.100.1", T0 + 6).refuses
    assert active.stats.released == 1


def test_forged_and_malformed_records_are_counted_and_ignored() -> None:
    active = ActiveCommands(KEY)
    forged = command("suspend_smtp", "alice@example.org", key=b"attacker-key")
    assert active.apply_record(forged.to_json()) is None
    tampered = orjson.loads(command("suspend_smtp", "bob@example.org").to_json())
    tampered["subject"] = "carol@example.org"
    assert active.apply_record(orjson.dumps(tampered)) is None
    unsigned = orjson.loads(command("suspend_smtp", "dave@example.org").to_json())
    unsigned["sig"] = ""
    assert active.apply_record(orjson.dumps(unsigned)) is None
    assert active.apply_record(b"{not json") is None
    assert active.apply_record(b'{"type": "alert"}') is None
    assert active.stats.rejected == {
        "bad signature": 2,
        "unsigned": 1,
        "not JSON": 1,
        "not a command": 1,
    }
    assert active.stats.rejected_total == 5
    for user in ("alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org"):
        assert not active.decide_smtp(user, "", T0).refuses
    assert len(active) == 0


def test_signed_command_with_unusable_subject_is_rejected() -> None:
    active = ActiveCommands(KEY)
    outcome = active.apply(command("block_ip", "not-an-ip", subject_type="ip").to_json())
    assert outcome.outcome == "rejected" and "not an IP address" in outcome.detail
    outcome = active.apply(command("block_ip", "alice@example.org").to_json())
    assert outcome.outcome == "rejected"
    outcome = active.apply(command("suspend_smtp", "192.0.2.1", subject_type="ip").to_json())
    assert outcome.outcome == "rejected"
    outcome = active.apply(command("suspend_smtp", "   ").to_json())
    assert outcome.outcome == "rejected"
    outcome = active.apply(release("release", "x", issued=T0).to_json())
    assert outcome.outcome == "rejected"
    assert active.stats.rejected == {
        "malformed fields": 2,
        "unknown subject_type": 2,
        "bad release": 1,
    }


def test_dry_run_commands_are_counted_and_ignored() -> None:
    active = ActiveCommands(KEY)
    outcome = active.apply(command("suspend_smtp", "alice@example.org", dry_run=True).to_json())
    assert outcome.outcome == "dry_run"
    assert not active.decide_smtp("alice@example.org", "", T0).refuses
    assert active.stats.dry_run == 1 and active.stats.applied == 0


def test_dry_run_release_does_not_lift() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", "alice@example.org"))
    dry = command(
        "release", "alice@example.org", issued=T0 + 1, releases="suspend_smtp", dry_run=True
    )
    feed(active, dry)
    assert active.decide_smtp("alice@example.org", "", T0 + 2).refuses


def test_commands_expire_at_expires_epoch() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", "alice@example.org", duration=60))
    assert active.decide_smtp("alice@example.org", "", T0 + 59.9).refuses
    assert not active.decide_smtp("alice@example.org", "", T0 + 60).refuses
    assert active.stats.expired == 1
    assert len(active) == 0


def test_expired_entry_cannot_be_revived_by_an_older_command() -> None:
    active = ActiveCommands(KEY)
    newer = command("suspend_smtp", "alice@example.org", issued=T0 + 100, duration=60)
    older = command("suspend_smtp", "alice@example.org", issued=T0, duration=10 * HOUR)
    feed(active, newer)
    assert not active.decide_smtp("alice@example.org", "", T0 + 200).refuses  # newer expired
    assert active.apply(older.to_json()).outcome == "stale"
    assert not active.decide_smtp("alice@example.org", "", T0 + 300).refuses


def test_already_expired_command_supersedes_older_when_now_is_given() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", "alice@example.org", issued=T0, duration=10 * HOUR))
    short = command("suspend_smtp", "alice@example.org", issued=T0 + 100, duration=60)
    assert active.apply(short.to_json(), now=T0 + 1000).outcome == "expired"
    assert not active.decide_smtp("alice@example.org", "", T0 + 1000).refuses


def test_prune_drops_expired_entries() -> None:
    active = ActiveCommands(KEY)
    feed(
        active,
        command("suspend_smtp", "a@x", duration=10),
        command("block_ip", "192.0.2.0/24", subject_type="prefix", duration=10),
        command("suspend_smtp", "b@x", duration=1000),
    )
    assert len(active) == 3
    assert active.prune(T0 + 10) == 2
    assert len(active) == 1
    assert not active.decide_smtp("", "192.0.2.1", T0 + 11).refuses
    assert active.decide_smtp("b@x", "", T0 + 11).refuses


def test_release_lifts_only_the_named_action() -> None:
    active = ActiveCommands(KEY)
    feed(
        active,
        command("suspend_smtp", "alice@example.org"),
        command("suspend_login", "alice@example.org"),
    )
    released = active.apply_record(
        release("suspend_smtp", "ALICE@example.org", issued=T0 + 10).to_json()
    )
    assert released is not None and released.action == "release"
    decision = active.decide_smtp("alice@example.org", "", T0 + 11)
    assert decision.refuses and decision.command is not None
    assert decision.command.action == "suspend_login"
    feed(active, release("suspend_login", "alice@example.org", issued=T0 + 12))
    assert not active.decide_smtp("alice@example.org", "", T0 + 13).refuses
    assert not active.decide_login("alice@example.org", "", T0 + 13).refuses


def test_older_release_does_not_lift_a_newer_command() -> None:
    active = ActiveCommands(KEY)
    feed(active, command("suspend_smtp", "alice@example.org", issued=T0 + 100))
    outcome = active.apply(release("suspend_smtp", "alice@example.org", issued=T0 + 50).to_json())
    assert outcome.outcome == "stale"
    assert active.decide_smtp("alice@example.org", "", T0 + 101).refuses


def test_older_command_after_release_stays_released() -> None:
    active = ActiveCommands(KEY)
    feed(active, release("suspend_smtp", "alice@example.org", issued=T0 + 100))
    outcome = active.apply(command("suspend_smtp", "alice@example.org", issued=T0).to_json())
    assert outcome.outcome == "stale"
    assert not active.decide_smtp("alice@example.org", "", T0 + 101).refuses


def test_newer_command_replaces_older_and_older_never_overrides() -> None:
    active = ActiveCommands(KEY)
    first = command("suspend_smtp", "alice@example.org", issued=T0, reason="first")
    second = command("suspend_smtp", "alice@example.org", issued=T0 + 10, reason="second")
    feed(active, second, first)  # out of order
    assert rule_reason(active.decide_smtp("alice@example.org", "", T0 + 11)) == "second"
    assert active.stats.stale == 1
    third = command("suspend_smtp", "alice@example.org", issued=T0 + 20, reason="third")
    feed(active, third)
    assert rule_reason(active.decide_smtp("alice@example.org", "", T0 + 21)) == "third"
    assert len(active) == 1


def test_newer_command_can_shorten_a_suspension() -> None:
    active = ActiveCommands(KEY)
    feed(
        active,
        command("suspend_smtp", "alice@example.org", issued=T0, duration=10 * HOUR),
        command("suspend_smtp", "alice@example.org", issued=T0 + 10, duration=60),
    )
    assert not active.decide_smtp("alice@example.org", "", T0 + 100).refuses


def test_duplicate_record_is_recognised() -> None:
    active = ActiveCommands(KEY)
    cmd = command("suspend_smtp", "alice@example.org")
    assert active.apply(cmd.to_json()).outcome == "applied"
    assert active.apply(cmd.to_json()).outcome == "duplicate"
    assert active.stats.applied == 1 and active.stats.duplicate == 1


def test_smtp_responses_are_configurable_and_strongest_wins() -> None:
    active = ActiveCommands(KEY, smtp_responses({"suspend_smtp": "HOLD", "block_ip": "DEFER"}))
    feed(
        active,
        command("suspend_smtp", "alice@example.org", reason="held for review"),
        command("block_ip", "192.0.2.9", subject_type="ip", reason="spraying"),
    )
    held = active.decide_smtp("alice@example.org", "192.0.2.1", T0)
    assert (held.action, rule_reason(held)) == ("HOLD", "held for review")
    both = active.decide_smtp("alice@example.org", "192.0.2.9", T0)
    assert (both.action, rule_reason(both)) == ("DEFER", "spraying")
    assert both.reply.startswith("client address blocked (ref ")
    feed(active, command("suspend_login", "alice@example.org", reason="stolen"))
    assert active.decide_smtp("alice@example.org", "192.0.2.9", T0).action == "REJECT"


def test_smtp_response_dunno_means_observe_only() -> None:
    active = ActiveCommands(KEY, smtp_responses({"block_ip": "DUNNO"}))
    feed(active, command("block_ip", "192.0.2.9", subject_type="ip"))
    assert not active.decide_smtp("", "192.0.2.9", T0).refuses
    assert active.decide_login("x", "192.0.2.9", T0).refuses


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"isolate_sender": "REJECT"}, "unknown action"),
        ({"suspend_smtp": "reject"}, "choose one of"),
        ({"block_ip": "DISCARD"}, "choose one of"),
    ],
)
def test_bad_smtp_responses_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        smtp_responses(overrides)


def test_reply_is_a_generic_phrase_and_a_reference_never_the_rule_reason() -> None:
    active = ActiveCommands(KEY)
    suspension = command("suspend_smtp", "alice@example.org")
    block = command(
        "block_ip",
        "192.0.2.5",
        subject_type="ip",
        reason="failed logins on 10 distinct accounts within 600 s (threshold 10)",
    )
    feed(active, suspension, block)
    smtp = active.decide_smtp("alice@example.org", "", T0)
    login = active.decide_login("", "192.0.2.5", T0)
    assert smtp.reply == f"account suspended (ref {suspension.id[:8]})"
    assert login.reply == f"client address blocked (ref {block.id[:8]})"
    for reply in (smtp.reply, login.reply):
        assert "threshold" not in reply and "within" not in reply
    # The rule's reason stays available for logs.
    assert rule_reason(login).endswith("(threshold 10)")


def test_reply_texts_are_configurable_per_action() -> None:
    replies = client_replies({"block_ip": "access denied, call +1 555 0100"})
    active = ActiveCommands(KEY, replies=replies)
    block = command("block_ip", "192.0.2.0/24", subject_type="prefix")
    suspension = command("suspend_login", "bob@example.org")
    feed(active, block, suspension)
    assert active.decide_smtp("", "192.0.2.7", T0).reply == (
        f"access denied, call +1 555 0100 (ref {block.id[:8]})"
    )
    assert active.decide_login("bob@example.org", "", T0).reply == (
        f"account suspended (ref {suspension.id[:8]})"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"isolate_sender": "isolated"}, "unknown action"),
        ({"block_ip": ""}, "non-empty"),
        ({"block_ip": 554}, "non-empty string"),
        ({"block_ip": "blocked\r\n550 more"}, "one line"),
        ({"block_ip": " blocked"}, "surrounding spaces"),
        ({"block_ip": "bloqué"}, "printable ASCII"),
        ({"block_ip": "x" * 106}, "at most 105"),
    ],
)
def test_bad_reply_texts_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_replies(overrides)  # type: ignore[arg-type]


def test_rule_reason_replies_are_sanitized_bounded_and_keep_the_reference() -> None:
    active = ActiveCommands(KEY, replies=ClientReplies(rule_reason=True))
    nasty = "burst by evil\r\n550 fake\x00 é" + "x" * 500
    cmd = command("suspend_smtp", "alice@example.org", reason=nasty)
    feed(active, cmd)
    reply = active.decide_smtp("alice@example.org", "", T0).reply
    assert reply.startswith("burst by evil 550 fake")
    assert reply.endswith(f"... (ref {cmd.id[:8]})")
    assert len(reply) == REASON_LIMIT
    assert all(" " <= ch <= "~" for ch in reply)


def test_rule_reason_replies_fall_back_to_the_phrase_when_empty() -> None:
    active = ActiveCommands(KEY, replies=ClientReplies(rule_reason=True))
    suspension = command("suspend_smtp", "alice@example.org", reason="\r\n\t")
    block = command("block_ip", "192.0.2.5", subject_type="ip", reason="")
    audited = command("suspend_login", "bob@example.org")
    feed(active, suspension, block, audited)
    assert active.decide_smtp("alice@example.org", "", T0).reply == (
        f"account suspended (ref {suspension.id[:8]})"
    )
    assert active.decide_login("", "192.0.2.5", T0).reply == (
        f"client address blocked (ref {block.id[:8]})"
    )
    assert active.decide_login("bob@example.org", "", T0).reply == (
        f"{AUDIT_REASON} (ref {audited.id[:8]})"
    )


def test_sanitize_reason_and_parse_address() -> None:
    assert sanitize_reason("a\nb\rc\td") == "a b c d"
    assert sanitize_reason("short", limit=10) == "short"
    assert sanitize_reason("0123456789abc", limit=10) == "0123456..."
    assert str(parse_address(" ::ffff:192.0.2.1 ")) == "192.0.2.1"
    assert parse_address("192.0.2.300") is None


def test_key_must_be_given() -> None:
    with pytest.raises(ValueError, match="signing key"):
        ActiveCommands(b"")


def test_signature_covers_every_field() -> None:
    cmd = command("suspend_smtp", "alice@example.org")
    longer = replace(cmd, expires_epoch=cmd.expires_epoch + 10 * HOUR)
    resigned = orjson.loads(longer.to_json())
    assert signature(resigned, KEY) != cmd.sig
    active = ActiveCommands(KEY)
    assert active.apply_record(longer.to_json()) is None
    assert active.stats.rejected == {"bad signature": 1}


def test_overlapping_prefixes_longest_first_and_release_of_one() -> None:
    active = ActiveCommands(KEY)
    feed(
        active,
        command("block_ip", "10.1.0.0/16", subject_type="prefix", reason="wide"),
        command("block_ip", "10.1.2.0/24", subject_type="prefix", reason="narrow"),
        command("block_ip", "2001:db8::/32", subject_type="prefix", reason="v6 wide"),
        command("block_ip", "2001:db8:1:2::/64", subject_type="prefix", reason="v6 narrow"),
    )
    assert rule_reason(active.decide_smtp("", "10.1.2.3", T0)) == "narrow"
    assert rule_reason(active.decide_smtp("", "10.1.3.3", T0)) == "wide"
    assert rule_reason(active.decide_smtp("", "2001:db8:1:2::9", T0)) == "v6 narrow"
    assert rule_reason(active.decide_smtp("", "2001:db8:ffff::9", T0)) == "v6 wide"
    assert not active.decide_smtp("", "10.2.0.1", T0).refuses
    feed(active, release("block_ip", "10.1.2.0/24", subject_type="prefix", issued=T0 + 1))
    assert rule_reason(active.decide_smtp("", "10.1.2.3", T0 + 2)) == "wide"
    feed(active, release("block_ip", "10.1.0.0/16", subject_type="prefix", issued=T0 + 1))
    assert not active.decide_smtp("", "10.1.2.3", T0 + 2).refuses
    # An IPv4 prefix never matches an IPv6 address with the same leading bits.
    feed(active, command("block_ip", "32.1.13.0/24", subject_type="prefix"))  # 0x20010d..
    assert active.decide_smtp("", "32.1.13.7", T0 + 2).refuses
    assert not active.decide_smtp("", "2001:d00::1", T0 + 2).refuses
