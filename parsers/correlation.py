"""The small per-host state that ties log lines together.

- Postfix queue id -> the submitting SASL account, client address and TLS
  version (so deliveries, bounces and queue lines name the account);
- Postfix smtpd session (program + pid, between ``connect from`` and
  ``disconnect from``) -> client address, TLS version, account, failed AUTHs;
- Dovecot login session id -> account, address, TLS, protocol (for logouts)
  and its main process pid (for ``Killed with signal 15``);
- recent failed authentications, to count one attempt once when several
  programs log it (see :class:`FailedAttempts`).

Every map is bounded twice: a maximum number of entries (least recently used
goes first) and an expiry measured in event time, never on the wall clock.

Only the queue map outlives a restart of the publisher:
:meth:`HostState.export_queue` gives it as plain JSON values, in least
recently used order, and :meth:`HostState.import_queue` takes them back,
checking every field. Sessions and failed attempts are not kept: the lines
after the checkpoint are read again, and a restored failure would make its
own re-read look like an echo. The snapshot may be a little ahead of the
checkpoint (lines fed but not yet acknowledged), so a restored entry replays
until the latest event time the snapshot had seen: a line of that time or
earlier is a line read again, and leaves the entry as it is (a ``client=``
line does not replace it, a ``queue active`` line is no retry).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# How long records wait for their echo from another program. Dovecot logs the
# passdb failure, waits auth_failure_delay (2 s by default), then answers
# Postfix; the auth penalty is served before the lookup, so the gap stays small.
ECHO_WINDOW: Final = 10.0
_NO_SOURCES: Final[frozenset[str]] = frozenset()


class BoundedMap(Generic[K, V]):
    """A least-recently-used map with a size limit and an event-time expiry."""

    __slots__ = ("_entries", "_max_size", "_ttl", "_writes")

    # every this many writes, expired entries are retired from the old end
    SWEEP_EVERY: Final = 64

    def __init__(self, max_size: int, ttl: float) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max_size = max_size
        self._ttl = ttl
        self._writes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry[0] > self._ttl:
            del self._entries[key]
            return None
        return entry[1]

    def touch(self, key: K, now: float) -> V | None:
        """Like :meth:`get`, and count this as a use (it moves to the young end)."""
        value = self.get(key, now)
        if value is not None:
            self._entries[key] = (max(now, self._entries[key][0]), value)
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, now: float) -> None:
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        entries[key] = (now, value)
        if len(entries) > self._max_size:
            entries.popitem(last=False)
        self._writes += 1
        if self._writes >= self.SWEEP_EVERY:
            self._writes = 0
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Retire the entries not used for longer than the expiry, oldest first."""
        entries = self._entries
        horizon = now - self._ttl
        while entries:
            key = next(iter(entries))
            if entries[key][0] >= horizon:
                break
            del entries[key]

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def items(self) -> list[tuple[K, float, V]]:
        """(key, time of last use, value), least recently used first."""
        return [(key, entry[0], entry[1]) for key, entry in self._entries.items()]

    def restore(self, key: K, value: V, time: float) -> None:
        """Add an entry at the young end with its own time (entries come oldest first)."""
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (time, value)
        if len(entries) > self._max_size:
            entries.popitem(last=False)

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def ttl(self) -> float:
        return self._ttl


@dataclass(slots=True)
class SmtpdSession:
    """One client connection to one smtpd process."""

    client_ip: str | None
    tls: str | None = field(default=None, init=False)
    user: str | None = field(default=None, init=False)
    auth_reported: bool = field(default=False, init=False)
    failures: int = field(default=0, init=False)
    # the account of this connection's last SASL failure that named one
    failed_user: str | None = field(default=None, init=False)
    hold_pending: bool = field(default=False, init=False)

    @property
    def tls_state(self) -> str:
        """The negotiated version, or ``none``: Postfix logs every handshake when it happens."""
        return self.tls or "none"


@dataclass(slots=True)
class QueuedMessage:
    """What is known about a Postfix queue id."""

    user: str | None
    client_ip: str | None
    tls: str | None
    protocol: str | None
    sender: str | None = None
    # for a bounce or delay notice: the queue id of the message it reports on
    notice_of: str | None = field(default=None, init=False)
    notice_kind: str | None = field(default=None, init=False)
    queued_before: bool = field(default=False, init=False)
    # restored from a snapshot: lines up to this event time were applied already
    replay_until: float | None = field(default=None, init=False)
    # restored while replaying: ``queued_before`` as it stood at the snapshot
    queued_at_snapshot: bool = field(default=False, init=False)

    def end_replay(self) -> None:
        """Lines after the snapshot are new: the entry is again as it was saved."""
        self.queued_before = self.queued_before or self.queued_at_snapshot
        self.replay_until = None


@dataclass(slots=True)
class LoginSession:
    """A Dovecot login (``Login: user=<...>, ..., session=<id>``)."""

    user: str | None
    client_ip: str | None
    tls: str | None
    protocol: str | None


@dataclass(slots=True)
class _Attempt:
    epoch: float
    user: str | None
    sources: set[str]
    in_login_session: bool
    summarized: bool = field(default=False, init=False)
    # joined by a Postfix SASL line that named no account: a guess, which a
    # named line may take back (see FailedAttempts.record)
    smtpd_guessed: bool = False


class QueueMap(BoundedMap[str, QueuedMessage]):
    """Queue id -> message; knows the latest event time it was used at, for snapshots."""

    __slots__ = ("latest", "restored")

    def __init__(self, max_size: int, ttl: float) -> None:
        super().__init__(max_size, ttl)
        self.latest = -math.inf
        # whether entries came from a snapshot (only then can a put be a replay)
        self.restored = False

    def get(self, key: str, now: float) -> QueuedMessage | None:
        # BoundedMap.get written out: every queue line comes here
        if now > self.latest:
            self.latest = now
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry[0] > self._ttl:
            del self._entries[key]
            return None
        message = entry[1]
        if message.replay_until is not None and now > message.replay_until:
            message.end_replay()
        return message

    def put(self, key: str, value: QueuedMessage, now: float) -> None:
        if now > self.latest:
            self.latest = now
        if self.restored:
            known = self._entries.get(key)
            if known is not None:
                replay_until = known[1].replay_until
                if replay_until is not None and now <= replay_until:
                    return  # a line read again after a restart: the entry already holds it
        super().put(key, value, now)


@dataclass(slots=True)
class QueueImport:
    """What :meth:`HostState.import_queue` did with a snapshot."""

    restored: int = 0
    # past the expiry or beyond the size bound
    dropped: int = 0
    # malformed: wrong types, missing fields, not a queue id
    skipped: int = 0
    # the snapshot itself is not one (the other counts are then zero)
    unusable: str | None = None


# position of each field in an exported queue entry
_QUEUE_FIELDS: Final = (
    "queue_id",
    "time",
    "user",
    "client_ip",
    "tls",
    "protocol",
    "sender",
    "notice_of",
    "notice_kind",
    "queued_before",
)
# no logged field is longer than a log line
_MAX_TEXT: Final = 64 * 1024


def _text_or_none(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise ValueError("not a text")
    return value


def _is_queue_id(value: object) -> bool:
    return (
        type(value) is str
        and 5 <= len(value) <= 20
        and value.isascii()
        and value.isalnum()
        and value != "NOQUEUE"
    )


def _event_time(value: object) -> float | None:
    if type(value) is not float and type(value) is not int:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _restored_message(row: object) -> tuple[str, float, QueuedMessage] | None:
    """One exported entry, checked field by field; None when anything is off."""
    if type(row) is not list or len(row) != len(_QUEUE_FIELDS):
        return None
    queue_id, time = row[0], _event_time(row[1])
    if not _is_queue_id(queue_id) or time is None or type(row[9]) is not bool:
        return None
    try:
        message = QueuedMessage(
            user=_text_or_none(row[2]),
            client_ip=_text_or_none(row[3]),
            tls=_text_or_none(row[4]),
            protocol=_text_or_none(row[5]),
            sender=_text_or_none(row[6]),
        )
        message.notice_of = _text_or_none(row[7])
        message.notice_kind = _text_or_none(row[8])
    except ValueError:
        return None
    message.queued_at_snapshot = row[9]
    return str(queue_id), time, message


def same_account(first: str | None, second: str | None) -> bool:
    """Whether two logged names can be the same account (case, realm added or not)."""
    if first is None or second is None:
        return True
    a, b = first.casefold(), second.casefold()
    if a == b:
        return True
    if ("@" in a) == ("@" in b):
        return False
    return a.partition("@")[0] == b.partition("@")[0]


class FailedAttempts:
    """Recent failed authentications by client address, to count each attempt once.

    The rule is "first record wins": the first line that reports a failed
    attempt is the canonical ``auth`` event; a later line from *another*
    program that reports a failure for the same address and a compatible
    account within :data:`ECHO_WINDOW` seconds joins that attempt and becomes
    ``auth_echo``. Each program contributes at most one record per attempt,
    so N failures logged by both Postfix and Dovecot still give N attempts,
    whichever daemon's line comes first. Dovecot lines of an IMAP/POP3 login
    session (they carry ``<session>``) are never joined with Postfix SASL
    lines: those never carry a session.

    A Postfix line without an account (``SASL LOGIN authentication failed:
    UGFzc3dvcmQ6``) fits the record of any account, and two connections from
    one address may be waiting at once. It joins, in order of preference, a
    record of the account its smtpd connection failed with before
    (``session_user``), else the oldest that fits. When a named Postfix line
    later finds its own record taken by such a guess, the guess moves to
    another record that fits it, so each line still pairs with one record.
    """

    SMTPD: Final = "smtpd"
    DOVECOT: Final = "dovecot"
    PAM: Final = "pam"
    CYRUS: Final = "cyrus"

    def __init__(self, max_addresses: int = 100_000, per_address: int = 32) -> None:
        self._by_ip: BoundedMap[str, deque[_Attempt]] = BoundedMap(max_addresses, ECHO_WINDOW * 6)
        self._per_address = per_address

    def record(
        self,
        ip: str,
        user: str | None,
        source: str,
        epoch: float,
        in_login_session: bool,
        session_user: str | None = None,
    ) -> tuple[bool, frozenset[str]]:
        """Record one failure.

        Returns whether it is a new attempt (False: it echoes one already
        counted) and which programs had already logged that attempt.
        ``session_user`` is the account a user-less line's connection named
        before, if any.
        """
        attempts = self._by_ip.touch(ip, epoch)
        if attempts is None:
            attempts = deque(maxlen=self._per_address)
            self._by_ip.put(ip, attempts, epoch)
        hint = session_user if user is None else None
        fallback: _Attempt | None = None
        for attempt in attempts:
            if self._pairs(attempt, user, source, epoch, in_login_session):
                if hint is None or (attempt.user is not None and same_account(hint, attempt.user)):
                    return False, self._join(attempt, user, source)
                if fallback is None:
                    fallback = attempt
        if fallback is not None:
            return False, self._join(fallback, user, source)
        if source == self.SMTPD and user is not None:
            taken_back = self._take_back(attempts, user, epoch)
            if taken_back is not None:
                return False, taken_back
        attempts.append(
            _Attempt(
                epoch,
                user,
                {source},
                in_login_session,
                smtpd_guessed=source == self.SMTPD and user is None,
            )
        )
        return True, _NO_SOURCES

    def _pairs(
        self,
        attempt: _Attempt,
        user: str | None,
        source: str,
        epoch: float,
        in_login_session: bool,
    ) -> bool:
        """Can a failure of ``source`` be another record of ``attempt``?"""
        return (
            source not in attempt.sources
            and abs(epoch - attempt.epoch) <= ECHO_WINDOW
            and same_account(user, attempt.user)
            and not (source == self.SMTPD and attempt.in_login_session)
            and not (in_login_session and self.SMTPD in attempt.sources)
        )

    def _join(self, attempt: _Attempt, user: str | None, source: str) -> frozenset[str]:
        earlier = frozenset(attempt.sources)
        attempt.sources.add(source)
        if attempt.user is None:
            attempt.user = user
        if source == self.SMTPD and user is None:
            attempt.smtpd_guessed = True
        return earlier

    def _take_back(
        self, attempts: deque[_Attempt], user: str, epoch: float
    ) -> frozenset[str] | None:
        """Pair a named Postfix line with its record that a user-less line took by guess.

        The guess moves to another record that fits a line without an account;
        returns the programs that had logged the attempt, or None when no
        record can move.
        """
        taken = free = None
        for attempt in attempts:
            if abs(epoch - attempt.epoch) > ECHO_WINDOW:
                continue
            if (
                taken is None
                and attempt.smtpd_guessed
                and attempt.user is not None
                and same_account(user, attempt.user)
            ):
                taken = attempt
            elif free is None and self._pairs(attempt, None, self.SMTPD, epoch, False):
                free = attempt
        if taken is None or free is None:
            return None
        self._join(free, None, self.SMTPD)
        taken.smtpd_guessed = False
        return frozenset(taken.sources - {self.SMTPD})

    def claim_for_summary(
        self, ip: str, user: str | None, since: float, until: float, most: int
    ) -> int:
        """Mark up to ``most`` sessionless Dovecot passdb failures of ``ip`` as summarized.

        Used for a login summary whose session the auth process did not name:
        it reports attempts that the auth process may have logged one by one
        without ``<session>`` (Dovecot before 2.2, some auth-worker lines).
        Failures already paired with a Postfix SASL line belong to SMTP and
        are never claimed.
        """
        attempts = self._by_ip.get(ip, until)
        if attempts is None:
            return 0
        claimed = 0
        for attempt in attempts:
            if claimed >= most:
                break
            if (
                not attempt.summarized
                and not attempt.in_login_session
                and self.DOVECOT in attempt.sources
                and self.SMTPD not in attempt.sources
                and since - ECHO_WINDOW <= attempt.epoch <= until
                and same_account(user, attempt.user)
            ):
                attempt.summarized = True
                claimed += 1
        return claimed


@dataclass(slots=True)
class HostState:
    """All correlation state of one mail host."""

    # keyed by (program, pid) of the smtpd process
    smtpd: BoundedMap[tuple[str, str | None], SmtpdSession] = field(
        default_factory=lambda: BoundedMap(20_000, 3600.0)
    )
    queue: QueueMap = field(default_factory=lambda: QueueMap(200_000, 6 * 86400.0))
    logins: BoundedMap[str, LoginSession] = field(
        default_factory=lambda: BoundedMap(100_000, 2 * 86400.0)
    )
    login_pids: BoundedMap[str, str] = field(
        default_factory=lambda: BoundedMap(100_000, 2 * 86400.0)
    )
    session_failures: BoundedMap[str, int] = field(
        default_factory=lambda: BoundedMap(100_000, 3600.0)
    )
    failures: FailedAttempts = field(default_factory=FailedAttempts)

    def export_queue(self) -> dict[str, object]:
        """The queue map as JSON values: ``as_of`` (latest event time) and ``entries``.

        Entries are lists in the order of ``_QUEUE_FIELDS``, least recently
        used first, so that an import keeps the eviction order.
        """
        entries: list[list[object]] = []
        for queue_id, time, message in self.queue.items():
            entries.append(
                [
                    queue_id,
                    time,
                    message.user,
                    message.client_ip,
                    message.tls,
                    message.protocol,
                    message.sender,
                    message.notice_of,
                    message.notice_kind,
                    message.queued_before or message.queued_at_snapshot,
                ]
            )
        latest = self.queue.latest
        return {"as_of": latest if math.isfinite(latest) else None, "entries": entries}

    def import_queue(self, data: object) -> QueueImport:
        """Restore a snapshot of :meth:`export_queue` into this state; never raises.

        Malformed entries are skipped, entries past the expiry (measured from
        the snapshot's latest event time) or beyond the size bound dropped.
        Restored entries replay up to that event time (see the module notes).
        """
        report = QueueImport()
        if type(data) is not dict:
            report.unusable = "not a JSON object"
            return report
        rows = data.get("entries")
        if type(rows) is not list:
            report.unusable = "no list of entries"
            return report
        as_of = _event_time(data.get("as_of"))
        queue = self.queue
        # Only the youngest entries fit; the older ones are not even checked.
        fitting = rows[-queue.max_size :] if len(rows) > queue.max_size else rows
        report.dropped = len(rows) - len(fitting)
        restored: list[tuple[str, float, QueuedMessage]] = []
        for row in fitting:
            entry = _restored_message(row)
            if entry is None:
                report.skipped += 1
            else:
                restored.append(entry)
        if restored:
            latest = max(time for _, time, _ in restored)
            as_of = latest if as_of is None else max(as_of, latest)
        if as_of is None:
            return report
        horizon = as_of - queue.ttl
        for queue_id, time, message in restored:
            if time < horizon:
                report.dropped += 1
                continue
            message.replay_until = as_of
            queue.restore(queue_id, message, time)
            queue.restored = True
            report.restored += 1
        if as_of > queue.latest:
            queue.latest = as_of
        return report
