"""`mailwarden evaluate`: replay a simulation and score the rules against its labels.

Reads what ``mailwarden simulate`` wrote (``postfix.log``, ``dovecot.log``,
``labels.jsonl``, ``population.json``), replays the logs through the same
parsers and detector as ``mailwarden replay``, and reports:

- per attack, whether it was caught, how long after it started, by which
  rule, how many of its expected actions were taken, and any action that
  punished a victim;
- false positives: alerts and commands whose subjects are benign (an account
  in no label, an IP that is no attacker's), per rule, per 10,000 benign
  accounts per day, with the benign habit that caused them (NAT office, bulk
  sender, carrier NAT, stale password, ...) read from ``population.json``.

A label is caught by a command whose (action, subject) is one of its
expected actions, or by an alert of one of its expected rules that names one
of its subjects, at or after the attack's start.
"""

from __future__ import annotations

import heapq
import ipaddress
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from mailwarden.cmd_replay import REPLAY_UNSIGNED_KEY, ReplayCounts, event_streams
from mailwarden.simulate import Label, labelled_accounts, load_labels
from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import Policy, PolicyError, load_policy

PER_ACCOUNTS = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision of the detector, reduced to what scoring needs.

    ``users`` and ``ips`` are the decision's own subjects (an alert's user and
    source IP, a command's subject); ``related`` adds what an alert only
    mentions (sampled victims of a spray), used to match labels, not to blame.
    """

    kind: str  # "alert" or "command"
    rule: str
    action: str  # a command's action, "alert" for alerts
    epoch: float
    users: tuple[str, ...]
    ips: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    dry_run: bool = False
    allowlisted: bool = False  # an alert whose command the allowlist withheld

    @property
    def subject(self) -> str:
        return next(iter((*self.users, *self.ips, *self.prefixes)), "-")


def verdict_of(decision: Alert | Command) -> Verdict:
    if isinstance(decision, Alert):
        return Verdict(
            kind="alert",
            rule=decision.rule,
            action="alert",
            epoch=decision.epoch,
            users=(decision.user,) if decision.user else (),
            ips=(decision.source_ip,) if decision.source_ip else (),
            related=(*decision.related_users, *decision.related_ips),
            dry_run=decision.dry_run,
            allowlisted=bool(decision.evidence.get("allowlisted")),
        )
    subject_type, subject = decision.subject_type, decision.subject
    return Verdict(
        kind="command",
        rule=decision.rule,
        action=decision.action,
        epoch=decision.issued_epoch,
        users=(subject,) if subject_type == "account" else (),
        ips=(subject,) if subject_type == "ip" else (),
        prefixes=(subject,) if subject_type == "prefix" else (),
        dry_run=decision.dry_run,
    )


# -- per attack ---------------------------------------------------------------


@dataclass(slots=True)
class AttackResult:
    id: str
    kind: str
    start: str
    caught: bool
    detected_after: float | None
    first_rule: str | None
    rules: list[str]
    actions_taken: int
    actions_expected: int
    wrong_actions: list[str]


def score_attack(label: Label, verdicts: list[Verdict]) -> AttackResult:
    subjects = {*label.attacker_ips, *label.victims, *label.abusers}
    expected = {(a.action, a.subject) for a in label.expected_actions if a.action != "alert"}
    alerted = {a.subject for a in label.expected_actions if a.action == "alert"}
    forbidden = {(a.action, a.subject) for a in label.forbidden_actions}
    rules = set(label.expected_rules)
    first: Verdict | None = None
    taken: set[tuple[str, str]] = set()
    matched_rules: set[str] = set()
    wrong: list[str] = []
    for verdict in verdicts:
        if verdict.epoch < label.start:
            continue
        own = {*verdict.users, *verdict.ips, *verdict.prefixes}
        hit = False
        if verdict.kind == "command":
            for subject in own:
                if (verdict.action, subject) in expected:
                    taken.add((verdict.action, subject))
                    hit = True
                if (verdict.action, subject) in forbidden:
                    wrong.append(f"{verdict.action} {subject} ({verdict.rule})")
        elif verdict.rule in rules:
            named = own | set(verdict.related)
            if named & subjects:
                hit = True
                taken.update(("alert", s) for s in named & alerted)
        if hit:
            matched_rules.add(verdict.rule)
            if first is None:
                first = verdict
    return AttackResult(
        id=label.id,
        kind=label.kind,
        start=label.start_iso,
        caught=first is not None,
        detected_after=round(first.epoch - label.start, 1) if first else None,
        first_rule=first.rule if first else None,
        rules=sorted(matched_rules),
        actions_taken=len(taken),
        actions_expected=len(expected) + len(alerted),
        wrong_actions=wrong,
    )


# -- false positives ------------------------------------------------------------


class BenignMap:
    """Names the benign habit behind a subject, from ``population.json``."""

    def __init__(self, population: dict[str, Any]) -> None:
        self.offices = {o["ip"] for o in population.get("offices", [])}
        bulk = population.get("bulk_senders", [])
        self.bulk_accounts = {b["account"] for b in bulk}
        self.bulk_ips = {b["ip"] for b in bulk}
        self.webmail = population.get("webmail_ip", "127.0.0.1")
        self.stale = set(population.get("stale_password_accounts", []))
        self.forwarding = set(population.get("forwarding_accounts", []))
        self.roaming = set(population.get("roaming_accounts", []))
        self.networks: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = [
            (str(name), ipaddress.ip_network(net))
            for name, net in population.get("networks", {}).items()
        ]

    def trap_of(self, verdict: Verdict) -> str:
        # Shared addresses explain a decision best, then the account's habits, then networks.
        for ip in verdict.ips:
            if ip in self.offices:
                return "NAT office"
            if ip in self.bulk_ips:
                return "bulk sender"
            if ip == self.webmail:
                return "webmail"
        for user in verdict.users:
            if user in self.bulk_accounts:
                return "bulk sender"
            if user in self.stale:
                return "stale password"
            if user in self.forwarding:
                return "forwarding"
            if user in self.roaming:
                return "roaming user"
        for ip in verdict.ips:
            network = self._network_of(ip)
            if network == "mobile_carrier":
                return "carrier NAT"
            if network is not None:
                return network.replace("_", " ")
        return "account" if verdict.users else "other"

    def _network_of(self, ip: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for name, network in self.networks:
            if address.version == network.version and address in network:
                return name
        return None


@dataclass(slots=True)
class RuleFalsePositives:
    rule: str
    alerts: int = 0
    allowlisted: int = 0
    commands: int = 0
    subjects: int = 0
    alerts_per_10k_day: float = 0.0
    commands_per_10k_day: float = 0.0
    causes: dict[str, int] = field(default_factory=dict)


def is_benign(verdict: Verdict, accounts: set[str], attacker_ips: set[str]) -> bool:
    """True when none of the decision's own subjects belongs to an attack."""
    if any(user in accounts for user in verdict.users):
        return False
    if any(ip in attacker_ips for ip in verdict.ips):
        return False
    for prefix in verdict.prefixes:
        network = ipaddress.ip_network(prefix, strict=False)
        if any(_in(ip, network) for ip in attacker_ips):
            return False
    return bool(verdict.users or verdict.ips or verdict.prefixes)


def _in(ip: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    address = ipaddress.ip_address(ip)
    return address.version == network.version and address in network


def false_positives(
    labels: list[Label],
    verdicts: Iterable[Verdict],
    benign: BenignMap,
    benign_accounts: int,
    days: float,
) -> list[RuleFalsePositives]:
    accounts = labelled_accounts(labels)
    attacker_ips = {ip for label in labels for ip in label.attacker_ips}
    per_rule: dict[str, RuleFalsePositives] = {}
    subjects: dict[str, dict[str, str]] = defaultdict(dict)
    for verdict in verdicts:
        if not is_benign(verdict, accounts, attacker_ips):
            continue
        entry = per_rule.setdefault(verdict.rule, RuleFalsePositives(verdict.rule))
        if verdict.kind == "alert":
            entry.alerts += 1
            entry.allowlisted += verdict.allowlisted
        else:
            entry.commands += 1
        # An alert names both the account and the address, so it explains the subject best.
        if verdict.kind == "alert":
            subjects[verdict.rule][verdict.subject] = benign.trap_of(verdict)
        else:
            subjects[verdict.rule].setdefault(verdict.subject, benign.trap_of(verdict))
    scale = PER_ACCOUNTS / max(1, benign_accounts) / max(days, 1e-9)
    for rule, entry in per_rule.items():
        entry.subjects = len(subjects[rule])
        entry.causes = dict(Counter(subjects[rule].values()).most_common())
        entry.alerts_per_10k_day = round(entry.alerts * scale, 2)
        entry.commands_per_10k_day = round(entry.commands * scale, 2)
    return sorted(per_rule.values(), key=lambda e: (-e.alerts - e.commands, e.rule))


# -- the whole evaluation ---------------------------------------------------------


@dataclass(slots=True)
class ReplayStats:
    lines: int
    events: int
    unparsed: int
    decisions: int
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class Evaluation:
    benign_accounts: int
    days: float
    attacks: list[AttackResult]
    false_positives: list[RuleFalsePositives]
    replay: ReplayStats | None = None

    @property
    def caught(self) -> int:
        return sum(1 for a in self.attacks if a.caught)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.replay is not None:
            data["replay"]["lines_per_second"] = round(self.replay.lines_per_second)
        return data


def evaluate_verdicts(
    labels: list[Label], population: dict[str, Any], verdicts: list[Verdict]
) -> Evaluation:
    verdicts = sorted(verdicts, key=lambda v: v.epoch)
    benign_accounts = int(population["benign_accounts"])
    days = float(population["days"])
    return Evaluation(
        benign_accounts=benign_accounts,
        days=days,
        attacks=[score_attack(label, verdicts) for label in labels],
        false_positives=false_positives(
            labels, verdicts, BenignMap(population), benign_accounts, days
        ),
    )


@dataclass(frozen=True, slots=True)
class Simulation:
    """The files of one ``mailwarden simulate`` run."""

    directory: Path
    labels: list[Label]
    population: dict[str, Any]
    logs: tuple[Path, ...]


def load_simulation(directory: Path) -> Simulation:
    missing = [
        name
        for name in ("postfix.log", "dovecot.log", "labels.jsonl", "population.json")
        if not (directory / name).is_file()
    ]
    if missing:
        raise click.ClickException(
            f"{directory} is not a simulation (missing {', '.join(missing)}); "
            "create one with `mailwarden simulate --out DIR`"
        )
    try:
        population = orjson.loads((directory / "population.json").read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{directory / 'population.json'}: {exc}") from exc
    logs = (directory / "postfix.log", directory / "dovecot.log")
    return Simulation(directory, load_labels(directory / "labels.jsonl"), population, logs)


# -- output -------------------------------------------------------------------------


def format_evaluation(evaluation: Evaluation) -> str:
    names = [a.first_rule or "-" for a in evaluation.attacks]
    names += [fp.rule for fp in evaluation.false_positives]
    w = max(len("first rule"), *(len(name) for name in names))
    lines = [
        f"{'attack':<18} {'caught':<6} {'after':>9}  {'first rule':<{w}} {'actions':>7}  "
        "other rules / wrong actions"
    ]
    for a in evaluation.attacks:
        after = f"{a.detected_after:.0f} s" if a.detected_after is not None else "-"
        others = ", ".join(r for r in a.rules if r != a.first_rule)
        wrong = f"WRONG: {'; '.join(a.wrong_actions)}" if a.wrong_actions else ""
        lines.append(
            f"{a.kind:<18} {'yes' if a.caught else 'no':<6} {after:>9}  "
            f"{a.first_rule or '-':<{w}} {a.actions_taken:>3}/{a.actions_expected:<3}  "
            f"{'  '.join(x for x in (others, wrong) if x)}".rstrip()
        )
    lines.append(f"caught {evaluation.caught} of {len(evaluation.attacks)} attacks")
    lines.append("")
    lines.append(
        f"false positives per {PER_ACCOUNTS:,} benign accounts per day "
        f"({evaluation.benign_accounts} benign accounts, {evaluation.days:g} day(s))"
    )
    lines.append(
        f"{'rule':<{w}} {'alerts':>6} {'allowlisted':>11} {'commands':>8} {'subjects':>8} "
        f"{'alerts/10k/d':>12} {'cmds/10k/d':>10}  causes"
    )
    if not evaluation.false_positives:
        lines.append("(none)")
    for fp in evaluation.false_positives:
        causes = ", ".join(f"{name} {count}" for name, count in fp.causes.items())
        lines.append(
            f"{fp.rule:<{w}} {fp.alerts:>6} {fp.allowlisted:>11} {fp.commands:>8} "
            f"{fp.subjects:>8} {fp.alerts_per_10k_day:>12.1f} {fp.commands_per_10k_day:>10.1f}"
            f"  {causes}"
        )
    if evaluation.replay is not None:
        r = evaluation.replay
        lines.append("")
        lines.append(
            f"replayed {r.lines} lines ({r.events} events, {r.unparsed} unparsed) "
            f"in {r.seconds:.1f} s: {r.lines_per_second:,.0f} lines/s; {r.decisions} decisions"
        )
    return "\n".join(lines)


# -- replay ---------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedLogs:
    """A simulation's events in time order, parsed once so that many policies can be tried."""

    events: list[Event]
    lines: int
    unparsed: int
    unparsed_reasons: dict[str, int]
    seconds: float


def simulation_events(simulation: Simulation, counts: ReplayCounts) -> Iterator[Event]:
    """The events of the logs, merged in event time, as ``mailwarden replay`` reads them.

    A simulation's logs come from one host and share one parser, so that
    Postfix and Dovecot lines correlate; without a known host each file gets
    its own parser.
    """
    host = simulation.population.get("host")
    streams = event_streams(simulation.logs, "raw", host, "UTC", None, counts)
    return heapq.merge(*streams, key=_event_time)


def parse_simulation(simulation: Simulation) -> ParsedLogs:
    """Parse the logs once into memory, for trying many policies on the same events."""
    counts = ReplayCounts()
    started = time.perf_counter()
    events = list(simulation_events(simulation, counts))
    return ParsedLogs(
        events=events,
        lines=counts.lines,
        unparsed=counts.unparsed,
        unparsed_reasons=dict(counts.unparsed_reasons.most_common()),
        seconds=time.perf_counter() - started,
    )


def _event_time(event: Event) -> float:
    return event.epoch


def detect(events: Iterable[Event], policy: Policy) -> tuple[list[Verdict], float]:
    """Run a fresh detector over the events; its decisions and the seconds it took
    (including the parsing, when ``events`` parses as it goes).

    Commands are signed with replay's fixed key: they are scored, never applied.
    """
    detector = Detector(policy, REPLAY_UNSIGNED_KEY)
    verdicts: list[Verdict] = []
    started = time.perf_counter()
    for event in events:
        for decision in detector.process(event):
            verdicts.append(verdict_of(decision))
    return verdicts, time.perf_counter() - started


def evaluate_simulation(simulation: Simulation, policy: Policy) -> Evaluation:
    """Replay the simulation's logs through ``policy`` (streaming) and score the decisions."""
    counts = ReplayCounts()
    verdicts, seconds = detect(simulation_events(simulation, counts), policy)
    evaluation = evaluate_verdicts(simulation.labels, simulation.population, verdicts)
    evaluation.replay = ReplayStats(
        lines=counts.lines,
        events=counts.events,
        unparsed=counts.unparsed,
        decisions=len(verdicts),
        seconds=seconds,
    )
    return evaluation


def read_policy(path: Path | None) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file to evaluate (default: the built-in defaults).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def evaluate(directory: Path, policy_path: Path | None, as_json: bool) -> None:
    """Replay a simulation and score detection against its labels."""
    simulation = load_simulation(directory)
    evaluation = evaluate_simulation(simulation, read_policy(policy_path))
    if as_json:
        report = evaluation.to_dict()
        report["policy"] = str(policy_path) if policy_path else None
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"policy: {policy_path or '(built-in defaults)'}")
    click.echo(format_evaluation(evaluation))
