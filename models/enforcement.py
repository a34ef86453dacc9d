"""The set of active enforcement commands, and the answers adapters give from it.

Every adapter reads `mail.control` from the start and feeds each record to
:meth:`ActiveCommands.apply_record`; Postfix and Dovecot questions are then
answered by :meth:`ActiveCommands.decide_smtp` and
:meth:`ActiveCommands.decide_login`. Pure and deterministic: callers pass
``now`` (seconds since the epoch); nothing here reads a clock or does I/O.

The state does not depend on the order records arrive in, which matters
because two producers (a restarted worker, replay and live) can race on one
key. Per slot -- the action imposed or lifted, the subject type and the
normalized subject -- the command with the greatest ``issued_epoch`` wins:

- a record that is not a correctly signed command is counted by reason and
  ignored; so is a ``dry_run`` command;
- a newer command replaces the older one; an older one arriving later is
  counted as stale and changes nothing; on a tie the later arrival wins;
- a ``release`` empties the slot of the action it names (``releases``), and
  like any command it only beats commands issued no later than itself;
- a command stops acting at ``expires_epoch``; expired entries are dropped
  when they are next consulted (or by :meth:`ActiveCommands.prune`), and the
  slot remembers the expired command's ``issued_epoch`` so that an older
  command cannot revive it.

Accounts compare case-insensitively (``casefold`` after ``strip``). IP
subjects are parsed with :mod:`ipaddress` (an IPv4-mapped IPv6 address is
its IPv4 address); ``prefix`` subjects are networks that contain the
addresses they block.

What a refused client is told is not the command's ``reason``: that is the
rule's audit text (counts, windows, thresholds), for analysts, and would
teach an attacker how to stay under the limits. :class:`ClientReplies` makes
the text the client sees: a fixed phrase per action and a reference (the
first characters of the command id, which the alert and `mail.control`
carry), e.g. ``account suspended (ref 7b43e346)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Final, Literal

from models.commands import ACTIONS, Command, InvalidCommand, verify_command
from models.policy import TLS_VERSIONS

Verdict = Literal["REJECT", "DEFER", "HOLD", "DUNNO"]
Outcome = Literal["applied", "released", "dry_run", "stale", "duplicate", "expired", "rejected"]
Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Subject = str | Address | Network
Slot = tuple[str, str, Subject]

VERDICTS: Final[frozenset[str]] = frozenset({"REJECT", "DEFER", "HOLD", "DUNNO"})
# Which verdict wins when several commands apply to one request.
_STRENGTH: Final[dict[str, int]] = {"DUNNO": 0, "HOLD": 1, "DEFER": 2, "REJECT": 3}

ACCOUNT_ACTIONS: Final[frozenset[str]] = frozenset(
    {"suspend_smtp", "suspend_login", "isolate_sender", "require_password_reset"}
)
ADDRESS_ACTIONS: Final[frozenset[str]] = frozenset({"block_ip"})
# The Postfix-facing actions whose verdict an operator may choose.
SMTP_ACTIONS: Final[tuple[str, ...]] = ("suspend_smtp", "suspend_login", "block_ip")
DEFAULT_SMTP_RESPONSES: Final[Mapping[str, Verdict]] = {
    "suspend_smtp": "REJECT",
    "suspend_login": "REJECT",
    "block_ip": "REJECT",
}
# What a refused client is told per action, before the reference.
DEFAULT_REPLY_TEXTS: Final[Mapping[str, str]] = {
    "suspend_smtp": "account suspended",
    "suspend_login": "account suspended",
    "block_ip": "client address blocked",
    "deny_insecure": "encryption required",
}
REPLY_ACTIONS: Final[tuple[str, ...]] = tuple(DEFAULT_REPLY_TEXTS)
# The insecure_auth rule's default min_tls: below it, a channel is what the rule
# calls insecure. Adapters cannot see per-class rule settings; an operator who
# raises the rule's min_tls sets the policy service's to match.
MIN_TLS: Final = "TLSv1.2"
REFUSED_TEXT: Final = "refused"
REASON_LIMIT: Final = 120
# Characters of the command id in a reply: enough for support to find the
# command among a day's worth, short enough to read over the phone.
REF_LENGTH: Final = 8
# " (ref 7b43e346)": what a reply keeps free for the reference.
_REF_ROOM: Final = len(" (ref )") + REF_LENGTH
REPLY_TEXT_LIMIT: Final = REASON_LIMIT - _REF_ROOM

# verify_command's messages carry details (a JSON error, a field name); the
# counters keep only the kind, so that their label set stays bounded.
_REJECT_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("bad signature", "bad signature"),
    ("unsigned", "unsigned"),
    ("not JSON", "not JSON"),
    ("not a JSON object", "not JSON"),
    ("type is", "not a command"),
    ("malformed fields", "malformed fields"),
    ("unknown action", "unknown action"),
    ("unknown subject_type", "unknown subject_type"),
    ("release names", "bad release"),
)


@dataclass(slots=True)
class EnforcementStats:
    """What :class:`ActiveCommands` did with the records it was given."""

    records: int = 0
    applied: int = 0
    released: int = 0
    dry_run: int = 0
    stale: int = 0
    duplicate: int = 0
    expired: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(slots=True, frozen=True)
class Applied:
    """The fate of one record: ``outcome``, the verified command if any, and why."""

    outcome: Outcome
    command: Command | None = None
    detail: str = ""


@dataclass(slots=True, frozen=True)
class Decision:
    """An answer for an MTA: ``action`` and the ``reply`` text for the client.

    ``reply`` is safe to send on the wire (see :class:`ClientReplies`);
    ``command`` is the command behind a refusal, whose ``reason`` and ``id``
    are for logs. ``DUNNO`` means "no objection" (for Dovecot: allow).
    """

    action: Verdict
    reply: str = ""
    command: Command | None = None

    @property
    def refuses(self) -> bool:
        return self.action != "DUNNO"


NO_OBJECTION: Final = Decision("DUNNO")


def sanitize_reason(text: str, limit: int = REASON_LIMIT) -> str:
    """Printable ASCII on one line, at most ``limit`` characters.

    Replies end up in SMTP and IMAP/POP3 responses and in map files; text
    taken from a log (an account name in a rule's reason, say) must not be
    able to add a line there.
    """
    printable = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    collapsed = " ".join(printable.split())
    if len(collapsed) <= limit:
        return collapsed
    return collapsed[: limit - 3].rstrip() + "..."


@dataclass(slots=True, frozen=True)
class ClientReplies:
    """What a refused client is told: the action's phrase and a reference.

    ``texts`` maps an action to its phrase; each must already be one short
    line of printable ASCII, and is refused otherwise rather than silently
    rewritten. With ``rule_reason`` the command's own reason (sanitized)
    replaces the phrase, for relays whose clients are all trusted; the
    reference is kept either way.
    """

    texts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REPLY_TEXTS))
    rule_reason: bool = False

    def __post_init__(self) -> None:
        for action, text in self.texts.items():
            if action not in REPLY_ACTIONS:
                raise ValueError(
                    f"reply text for unknown action {action!r}; known: {', '.join(REPLY_ACTIONS)}"
                )
            if not isinstance(text, str) or not text:
                raise ValueError(f"reply text for {action} must be a non-empty string")
            if sanitize_reason(text, REPLY_TEXT_LIMIT) != text:
                raise ValueError(
                    f"reply text for {action} must be printable ASCII on one line, without "
                    f"repeated or surrounding spaces, at most {REPLY_TEXT_LIMIT} characters: "
                    f"{text!r}"
                )

    def reply(self, command: Command) -> str:
        """One printable ASCII line of at most REASON_LIMIT characters."""
        ref = f"(ref {sanitize_reason(command.id)[:REF_LENGTH]})"
        room = REASON_LIMIT - len(ref) - 1
        text = sanitize_reason(command.reason, room) if self.rule_reason else ""
        return f"{text or self.texts.get(command.action, REFUSED_TEXT)} {ref}"


def client_replies(overrides: Mapping[str, str], *, rule_reason: bool = False) -> ClientReplies:
    """The default reply texts with ``overrides`` applied, validated."""
    return ClientReplies({**DEFAULT_REPLY_TEXTS, **overrides}, rule_reason)


def weak_tls(encryption_protocol: str, min_tls: str = MIN_TLS) -> bool:
    """Plaintext (empty) or a version below ``min_tls``; an unknown name is not judged."""
    if encryption_protocol == "":
        return True
    if encryption_protocol not in TLS_VERSIONS:
        return False
    return TLS_VERSIONS.index(encryption_protocol) < TLS_VERSIONS.index(min_tls)


def normalize_account(name: str) -> str:
    return name.strip().casefold()


@lru_cache(maxsize=65536)
def parse_address(text: str) -> Address | None:
    """The IP in ``text``, or None; an IPv4-mapped IPv6 address becomes IPv4."""
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def smtp_responses(overrides: Mapping[str, str]) -> dict[str, Verdict]:
    """The default SMTP verdicts with ``overrides`` applied, validated."""
    responses: dict[str, Verdict] = dict(DEFAULT_SMTP_RESPONSES)
    for action, verdict in overrides.items():
        if action not in SMTP_ACTIONS:
            raise ValueError(
                f"smtp response for unknown action {action!r}; known: {', '.join(SMTP_ACTIONS)}"
            )
        responses[action] = _verdict(verdict, action)
    return responses


def _verdict(text: str, action: str) -> Verdict:
    for verdict in ("REJECT", "DEFER", "HOLD", "DUNNO"):
        if text == verdict:
            return verdict
    choices = ", ".join(sorted(VERDICTS))
    raise ValueError(f"smtp response {text!r} for {action}: choose one of {choices}")


def _reject_kind(message: str) -> str:
    for prefix, kind in _REJECT_KINDS:
        if message.startswith(prefix):
            return kind
    return "invalid"


class ActiveCommands:
    """The commands in force, rebuilt from `mail.control` records."""

    def __init__(
        self,
        signing_key: bytes,
        smtp_responses: Mapping[str, Verdict] | None = None,
        replies: ClientReplies | None = None,
    ) -> None:
        if not signing_key:
            raise ValueError("a signing key is required to verify commands")
        self._key = signing_key
        self._responses: dict[str, Verdict] = dict(smtp_responses or DEFAULT_SMTP_RESPONSES)
        self.replies = replies or ClientReplies()
        self._active: dict[Slot, Command] = {}
        # Issued time of the latest release or expired command per emptied slot.
        self._floor: dict[Slot, float] = {}
        # Prefix entries indexed by (action, IP version, length, the prefix's
        # leading bits as an int), so a lookup is one dict probe per length.
        self._prefix_index: dict[tuple[str, int, int, int], Slot] = {}
        self._prefix_lengths: Counter[tuple[str, int, int]] = Counter()
        # (action, IP version) -> the prefix lengths in use, longest first.
        self._lengths: dict[tuple[str, int], tuple[int, ...]] = {}
        self.stats = EnforcementStats()

    def __len__(self) -> int:
        """Entries held, including expired ones not consulted since they expired."""
        return len(self._active)

    # -- feeding ---------------------------------------------------------------

    def apply_record(self, raw: bytes | str, now: float | None = None) -> Command | None:
        """Feed one `mail.control` record; the command if it changed the state."""
        result = self.apply(raw, now)
        if result.outcome in ("applied", "released"):
            return result.command
        return None

    def apply(self, raw: bytes | str, now: float | None = None) -> Applied:
        """Feed one record and say what became of it (for logs and counters).

        With ``now``, a command that has already expired only records that
        it supersedes older ones, and is counted as expired.
        """
        self.stats.records += 1
        try:
            command = verify_command(raw, self._key)
            slot = _slot(command)
        except InvalidCommand as exc:
            return self._reject(str(exc))
        if command.dry_run:
            self.stats.dry_run += 1
            return Applied("dry_run", command)
        current = self._active.get(slot)
        if current is not None and current.id == command.id and current.sig == command.sig:
            self.stats.duplicate += 1
            return Applied("duplicate", command)
        newest = current.issued_epoch if current is not None else self._floor.get(slot)
        if newest is not None and command.issued_epoch < newest:
            self.stats.stale += 1
            return Applied("stale", command)
        if command.action == "release":
            self._empty(slot, command.issued_epoch)
            self.stats.released += 1
            return Applied("released", command)
        if now is not None and command.expires_epoch <= now:
            self._empty(slot, command.issued_epoch)
            self.stats.expired += 1
            return Applied("expired", command)
        self._store(slot, command)
        self.stats.applied += 1
        return Applied("applied", command)

    def prune(self, now: float) -> int:
        """Drop every entry expired at ``now``; how many were dropped."""
        expired = [slot for slot, cmd in self._active.items() if cmd.expires_epoch <= now]
        for slot in expired:
            self._empty(slot, self._active[slot].issued_epoch)
        self.stats.expired += len(expired)
        return len(expired)

    def _reject(self, message: str) -> Applied:
        kind = _reject_kind(message)
        self.stats.rejected[kind] = self.stats.rejected.get(kind, 0) + 1
        return Applied("rejected", None, message)

    def _store(self, slot: Slot, command: Command) -> None:
        if self._active.get(slot) is None:
            self._count_prefix(slot, +1)
        self._active[slot] = command
        self._floor.pop(slot, None)

    def _empty(self, slot: Slot, issued_epoch: float) -> None:
        if self._active.pop(slot, None) is not None:
            self._count_prefix(slot, -1)
        self._floor[slot] = issued_epoch

    def _count_prefix(self, slot: Slot, delta: int) -> None:
        action, _, subject = slot
        if not isinstance(subject, IPv4Network | IPv6Network):
            return
        version, length = subject.version, subject.prefixlen
        key = (action, version, length, _leading_bits(subject.network_address, length))
        if delta > 0:
            self._prefix_index[key] = slot
        else:
            self._prefix_index.pop(key, None)
        self._prefix_lengths[(action, version, length)] += delta
        if self._prefix_lengths[(action, version, length)] <= 0:
            del self._prefix_lengths[(action, version, length)]
        self._lengths[(action, version)] = tuple(
            sorted(
                (n for (act, ver, n) in self._prefix_lengths if act == action and ver == version),
                reverse=True,
            )
        )

    # -- looking up ------------------------------------------------------------

    def account_command(self, action: str, account: str, now: float) -> Command | None:
        """The active ``action`` command for ``account``, if any."""
        name = normalize_account(account)
        if not name:
            return None
        return self._live((action, "account", name), now)

    def address_command(self, action: str, address: str, now: float) -> Command | None:
        """The active ``action`` command for an IP, exact or by a containing prefix."""
        parsed = parse_address(address)
        if parsed is None:
            return None
        exact = self._live((action, "ip", parsed), now)
        if exact is not None:
            return exact
        for length in self._lengths.get((action, parsed.version), ()):
            slot = self._prefix_index.get(
                (action, parsed.version, length, _leading_bits(parsed, length))
            )
            found = self._live(slot, now) if slot is not None else None
            if found is not None:
                return found
        return None

    def _live(self, slot: Slot, now: float) -> Command | None:
        command = self._active.get(slot)
        if command is None:
            return None
        if command.expires_epoch <= now:
            self._empty(slot, command.issued_epoch)
            self.stats.expired += 1
            return None
        return command

    # -- deciding --------------------------------------------------------------

    def decide_smtp(self, sasl_username: str, client_address: str, now: float) -> Decision:
        """The answer for one Postfix policy request (or ``check_sasl_access`` lookup).

        A suspended account (``suspend_smtp``, ``suspend_login``) and a
        blocked client address each give their configured verdict; the
        strongest wins. ``isolate_sender`` is not a policy answer: it is a
        transport choice, answered by the socketmap adapter.
        """
        found: list[Command] = []
        if sasl_username:
            for action in ("suspend_smtp", "suspend_login"):
                command = self.account_command(action, sasl_username, now)
                if command is not None:
                    found.append(command)
        if client_address:
            command = self.address_command("block_ip", client_address, now)
            if command is not None:
                found.append(command)
        best = NO_OBJECTION
        for command in found:
            verdict = self._responses[command.action]
            if _STRENGTH[verdict] > _STRENGTH[best.action]:
                best = Decision(verdict, self.replies.reply(command), command)
        return best

    def decide_login(self, login: str, remote: str, now: float) -> Decision:
        """The answer for Dovecot's auth policy ``allow``: refuse or no objection.

        Refused: an account under ``suspend_login`` and a blocked address.
        """
        command = self.account_command("suspend_login", login, now) or self.address_command(
            "block_ip", remote, now
        )
        if command is None:
            return NO_OBJECTION
        return Decision("REJECT", self.replies.reply(command), command)

    def decide_insecure(self, account: str, now: float) -> Decision:
        """REJECT if ``account`` is under ``deny_insecure``.

        Ask only for a login whose channel the adapter found unencrypted or
        weak: only the adapter knows its protocol's fields.
        """
        command = self.account_command("deny_insecure", account, now) if account else None
        if command is None:
            return NO_OBJECTION
        return Decision("REJECT", self.replies.reply(command), command)


def _leading_bits(address: Address, length: int) -> int:
    return int(address) >> (address.max_prefixlen - length)


def _slot(command: Command) -> Slot:
    """Where a command lives; raises InvalidCommand for a subject it cannot act on."""
    action = command.action
    if action == "release":
        if command.releases not in ACTIONS or command.releases == "release":
            raise InvalidCommand(f"release names no action to lift: {command.releases!r}")
        action = command.releases
    subject_type = command.subject_type
    subject: Subject
    if subject_type == "account":
        if action in ADDRESS_ACTIONS:
            raise InvalidCommand(f"unknown subject_type account for {action}")
        subject = normalize_account(command.subject)
        if not subject:
            raise InvalidCommand("malformed fields: empty account")
    elif action in ACCOUNT_ACTIONS:
        raise InvalidCommand(f"unknown subject_type {subject_type} for {action}")
    elif subject_type == "ip":
        address = parse_address(command.subject)
        if address is None:
            raise InvalidCommand(f"malformed fields: not an IP address: {command.subject!r}")
        subject = address
    else:
        try:
            subject = ip_network(command.subject.strip(), strict=False)
        except ValueError as exc:
            raise InvalidCommand(f"malformed fields: not a prefix: {command.subject!r}") from exc
    return (action, subject_type, subject)
