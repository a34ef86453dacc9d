"""`mailwarden tune`: sweep one threshold of one rule over a replay, with evidence.

The logs are parsed once; then, for each value, a detector running only the
rule under study replays the events with that value patched into the policy.
For each value the report gives the rule's alerts and commands per day and,
where the directory holds a simulation's labels, how many attacks meant for
the rule it caught, how fast, and its false positives per 10,000 benign
accounts per day (see ``mailwarden evaluate``). The table goes to stdout; a
self-contained HTML report with the plots embedded goes to ``--out``.

Subjects in the report (account names, addresses) come from log lines, so
they are attacker-controlled: the template autoescapes everything.
"""

from __future__ import annotations

import base64
import io
import statistics
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import jinja2
import orjson

from mailwarden.evaluate import (
    BenignMap,
    Evaluation,
    ParsedLogs,
    Simulation,
    Verdict,
    detect,
    evaluate_verdicts,
    parse_simulation,
)
from mailwarden.simulate import load_labels
from models.policy import Policy, PolicyError, RuleSettings, policy_from_dict

DAY_SECONDS = 86400
TOP_SUBJECTS = 15


@dataclass(slots=True)
class SweepPoint:
    """What the rule decided with one value of the parameter."""

    value: float
    alerts_per_day: list[int]
    commands_per_day: list[int]
    subjects: list[tuple[str, int, str]]  # subject, alerts, attack id or benign habit
    caught: int | None = None
    attacks: int | None = None
    median_detection: float | None = None
    fp_alerts_per_10k_day: float | None = None
    fp_commands_per_10k_day: float | None = None
    detections: dict[str, float | None] = field(default_factory=dict)  # attack id -> seconds

    @property
    def alerts_mean(self) -> float:
        return statistics.fmean(self.alerts_per_day) if self.alerts_per_day else 0.0

    @property
    def commands_mean(self) -> float:
        return statistics.fmean(self.commands_per_day) if self.commands_per_day else 0.0

    @property
    def detection_rate(self) -> float | None:
        if self.caught is None or not self.attacks:
            return None
        return self.caught / self.attacks


@dataclass(slots=True)
class Sweep:
    directory: str
    rule: str
    param: str
    days: list[str]
    points: list[SweepPoint]
    labelled: bool
    attack_ids: list[str]
    lines: int
    unparsed: int


# -- the policy patch -----------------------------------------------------------------


def rule_names() -> list[str]:
    return [f.name for f in fields(RuleSettings)]


def parse_values(rule: str, param: str, text: str) -> list[float]:
    """The swept values, checked against the type of ``rules.<rule>.<param>``."""
    if rule not in rule_names():
        raise click.BadParameter(
            f"unknown rule {rule!r} (rules: {', '.join(rule_names())})", param_hint="--rule"
        )
    defaults = getattr(RuleSettings(), rule)
    knobs = {f.name: getattr(defaults, f.name) for f in fields(defaults)}
    default = knobs.get(param)
    if isinstance(default, bool) or not isinstance(default, int | float):
        numeric = [name for name, value in knobs.items() if _is_number(value)]
        raise click.BadParameter(
            f"{rule} has no numeric parameter {param!r} (numeric: {', '.join(numeric)})",
            param_hint="--param",
        )
    values: list[float] = []
    for item in text.split(","):
        try:
            value = float(item.strip())
        except ValueError:
            raise click.BadParameter(f"{item!r} is not a number", param_hint="--values") from None
        if isinstance(default, int) and not value.is_integer():
            raise click.BadParameter(
                f"{rule}.{param} is an integer, got {item.strip()!r}", param_hint="--values"
            )
        values.append(value)
    if not values:
        raise click.BadParameter("no values", param_hint="--values")
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def patched_policy(base: dict[str, Any], rule: str, param: str, value: float) -> Policy:
    """``base`` with only ``rule`` enabled and ``rules.<rule>.<param> = value``, validated."""
    raw = {key: (dict(table) if isinstance(table, dict) else table) for key, table in base.items()}
    rules = {name: dict(table) for name, table in raw.get("rules", {}).items()}
    for name in rule_names():
        rules.setdefault(name, {})["enabled"] = name == rule
    rules[rule][param] = int(value) if float(value).is_integer() else value
    raw["rules"] = rules
    try:
        return policy_from_dict(raw, source=f"policy with {rule}.{param}={value:g}")
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc


def read_base_policy(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


# -- the sweep -------------------------------------------------------------------------


def find_logs(directory: Path) -> list[Path]:
    logs = sorted(p for p in directory.iterdir() if p.is_file() and ".log" in p.name)
    if not logs:
        raise click.ClickException(f"no log files (*.log, *.log.gz) in {directory}")
    return logs


def load_replay_directory(directory: Path, host: str | None) -> Simulation:
    """A simulation's directory, or any directory of logs (then without labels)."""
    population: dict[str, Any] = {}
    if (directory / "population.json").is_file():
        population = orjson.loads((directory / "population.json").read_bytes())
    if host is not None:
        population["host"] = host
    labels_file = directory / "labels.jsonl"
    labels = load_labels(labels_file) if labels_file.is_file() else []
    return Simulation(directory, labels, population, logs=tuple(find_logs(directory)))


def sweep(
    simulation: Simulation,
    parsed: ParsedLogs,
    base: dict[str, Any],
    rule: str,
    param: str,
    values: list[float],
) -> Sweep:
    labelled = bool(simulation.labels) and "benign_accounts" in simulation.population
    first_day = _first_day(simulation, parsed)
    n_days = _day_count(simulation, parsed, first_day)
    relevant = [label for label in simulation.labels if rule in label.expected_rules]
    scored = relevant or simulation.labels
    benign = BenignMap(simulation.population) if simulation.population else None
    attack_of = {
        subject: label.id
        for label in simulation.labels
        for subject in (*label.attacker_ips, *label.victims, *label.abusers)
    }
    points = []
    for value in values:
        verdicts, _ = detect(parsed.events, patched_policy(base, rule, param, value))
        verdicts = [v for v in verdicts if v.rule == rule]
        point = _point(value, verdicts, first_day, n_days, _describer(attack_of, benign))
        if labelled:
            _score(point, evaluate_verdicts(scored, simulation.population, verdicts))
            # false positives are judged against every label, not just the rule's own
            everything = evaluate_verdicts(simulation.labels, simulation.population, verdicts)
            _false_positives(point, everything, rule)
        points.append(point)
    return Sweep(
        directory=str(simulation.directory),
        rule=rule,
        param=param,
        days=[_day_name(first_day + d * DAY_SECONDS) for d in range(n_days)],
        points=points,
        labelled=labelled,
        attack_ids=[label.id for label in scored] if labelled else [],
        lines=parsed.lines,
        unparsed=parsed.unparsed,
    )


def _first_day(simulation: Simulation, parsed: ParsedLogs) -> float:
    if "start_epoch" in simulation.population:
        return float(simulation.population["start_epoch"])
    first = parsed.events[0].epoch if parsed.events else 0.0
    return first - first % DAY_SECONDS


def _day_count(simulation: Simulation, parsed: ParsedLogs, first_day: float) -> int:
    if "days" in simulation.population:
        return int(simulation.population["days"])
    last = parsed.events[-1].epoch if parsed.events else first_day
    return int((last - first_day) // DAY_SECONDS) + 1


def _day_name(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def _describer(attack_of: dict[str, str], benign: BenignMap | None) -> Callable[[Verdict], str]:
    """Names who a decision is about: the attack a subject belongs to, else its benign habit."""

    def describe(verdict: Verdict) -> str:
        for subject in (*verdict.users, *verdict.ips):
            if subject in attack_of:
                return f"attack {attack_of[subject]}"
        return benign.trap_of(verdict) if benign else ""

    return describe


def _point(
    value: float,
    verdicts: list[Verdict],
    first_day: float,
    n_days: int,
    describe: Callable[[Verdict], str],
) -> SweepPoint:
    alerts, commands = [0] * n_days, [0] * n_days
    subjects: Counter[str] = Counter()
    for verdict in verdicts:
        day = min(n_days - 1, max(0, int((verdict.epoch - first_day) // DAY_SECONDS)))
        if verdict.kind == "alert":
            alerts[day] += 1
            subjects[verdict.subject] += 1
        else:
            commands[day] += 1
    who = {v.subject: describe(v) for v in verdicts if v.kind == "alert"}
    top = [(s, n, who[s]) for s, n in subjects.most_common(TOP_SUBJECTS)]
    return SweepPoint(value, alerts, commands, top)


def _score(point: SweepPoint, evaluation: Evaluation) -> None:
    point.caught = evaluation.caught
    point.attacks = len(evaluation.attacks)
    times = [a.detected_after for a in evaluation.attacks if a.detected_after is not None]
    point.median_detection = statistics.median(times) if times else None
    point.detections = {a.id: a.detected_after for a in evaluation.attacks}


def _false_positives(point: SweepPoint, evaluation: Evaluation, rule: str) -> None:
    mine = [fp for fp in evaluation.false_positives if fp.rule == rule]
    point.fp_alerts_per_10k_day = mine[0].alerts_per_10k_day if mine else 0.0
    point.fp_commands_per_10k_day = mine[0].commands_per_10k_day if mine else 0.0


# -- output ---------------------------------------------------------------------------------


def format_sweep(result: Sweep) -> str:
    head = f"{result.param:>10} {'alerts/day':>10} {'cmds/day':>9}"
    if result.labelled:
        head += f" {'caught':>7} {'median s':>9} {'FP alerts/10k/d':>16} {'FP cmds/10k/d':>14}"
    lines = [
        f"{result.rule}.{result.param} over {result.directory} ({len(result.days)} days)",
        head,
    ]
    for p in result.points:
        row = f"{p.value:>10g} {p.alerts_mean:>10.1f} {p.commands_mean:>9.1f}"
        if result.labelled:
            median = f"{p.median_detection:.0f}" if p.median_detection is not None else "-"
            row += (
                f" {p.caught:>3}/{p.attacks:<3} {median:>9}"
                f" {p.fp_alerts_per_10k_day or 0:>16.1f} {p.fp_commands_per_10k_day or 0:>14.1f}"
            )
        lines.append(row)
    return "\n".join(lines)


def plot_png(result: Sweep) -> dict[str, str]:
    """The report's plots as base64 PNGs (matplotlib's Agg canvas, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = [p.value for p in result.points]
    plots: dict[str, str] = {}

    figure = Figure(figsize=(7.5, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for day_index, day in enumerate(result.days):
        colour = f"C{day_index % 10}"
        alerts = [p.alerts_per_day[day_index] for p in result.points]
        commands = [p.commands_per_day[day_index] for p in result.points]
        axes.plot(xs, alerts, "o-", color=colour, label=f"alerts {day}")
        axes.plot(xs, commands, "s--", color=colour, alpha=0.6, label=f"commands {day}")
    axes.set_xlabel(f"{result.rule}.{result.param}")
    axes.set_ylabel("per day")
    axes.set_ylim(bottom=0)
    axes.set_title("alerts and commands (suspensions, blocks) per day")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    plots["volume"] = _png(figure)

    if result.labelled:
        figure = Figure(figsize=(7.5, 3.6), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        rates = [100 * (p.detection_rate or 0.0) for p in result.points]
        axes.plot(xs, rates, "o-", color="tab:green", label="attacks caught (%)")
        axes.set_ylim(-5, 105)
        axes.set_xlabel(f"{result.rule}.{result.param}")
        axes.set_ylabel("attacks caught (%)")
        twin = axes.twinx()
        twin.plot(
            xs,
            [p.fp_alerts_per_10k_day or 0.0 for p in result.points],
            "s--",
            color="tab:red",
            label="false alerts / 10k accounts / day",
        )
        twin.plot(
            xs,
            [p.fp_commands_per_10k_day or 0.0 for p in result.points],
            "^:",
            color="tab:orange",
            label="false commands / 10k accounts / day",
        )
        twin.set_ylabel("false positives / 10k / day")
        highest = max(
            1.0,
            *(p.fp_alerts_per_10k_day or 0.0 for p in result.points),
            *(p.fp_commands_per_10k_day or 0.0 for p in result.points),
        )
        twin.set_ylim(bottom=0, top=highest * 1.1)
        handles = axes.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        axes.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small")
        axes.set_title("detection and false positives")
        axes.grid(alpha=0.3)
        plots["detection"] = _png(figure)
    return plots


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mailwarden tune: {{ sweep.rule }}.{{ sweep.param }}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; font-family: monospace; }
.muted { color: #777; }
</style></head><body>
<h1>{{ sweep.rule }}.{{ sweep.param }}</h1>
<p>Replay of <code>{{ sweep.directory }}</code>: {{ sweep.lines }} lines
({{ sweep.unparsed }} unparsed), {{ sweep.days | length }} day(s)
({{ sweep.days | join(", ") }}). Only <code>{{ sweep.rule }}</code> ran; every other
setting is the base policy's.</p>

<h2>Per value</h2>
<table>
<tr><th>{{ sweep.param }}</th><th>alerts/day</th><th>commands/day</th>
{% if sweep.labelled %}<th>attacks caught</th><th>median detection (s)</th>
<th>false alerts /10k/day</th><th>false commands /10k/day</th>{% endif %}</tr>
{% for p in sweep.points %}
<tr><td>{{ "%g" | format(p.value) }}</td><td>{{ "%.1f" | format(p.alerts_mean) }}</td>
<td>{{ "%.1f" | format(p.commands_mean) }}</td>
{% if sweep.labelled %}<td>{{ p.caught }}/{{ p.attacks }}</td>
<td>{{ "%.0f" | format(p.median_detection) if p.median_detection is not none else "-" }}</td>
<td>{{ "%.1f" | format(p.fp_alerts_per_10k_day) }}</td>
<td>{{ "%.1f" | format(p.fp_commands_per_10k_day) }}</td>{% endif %}</tr>
{% endfor %}
</table>

<h2>Volume</h2>
<img alt="alerts and commands per day against {{ sweep.param }}"
 src="data:image/png;base64,{{ plots.volume }}">
{% if plots.detection %}
<h2>Detection and false positives</h2>
<img alt="detection and false positives against {{ sweep.param }}"
 src="data:image/png;base64,{{ plots.detection }}">
<h3>Seconds from the start of each attack to the first decision</h3>
<table><tr><th>attack</th>{% for p in sweep.points %}<th>{{ "%g" | format(p.value) }}</th>
{% endfor %}</tr>
{% for attack in sweep.attack_ids %}<tr><td class="text">{{ attack }}</td>
{% for p in sweep.points %}{% set s = p.detections.get(attack) %}
<td>{{ "%.0f" | format(s) if s is not none else "missed" }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% else %}
<p class="muted">No labels in this directory: detection and false positives need a
simulation (<code>mailwarden simulate</code>).</p>
{% endif %}

<h2>Most frequent subjects of alerts</h2>
{% for p in sweep.points %}
<h3>{{ sweep.param }} = {{ "%g" | format(p.value) }}</h3>
{% if p.subjects %}<table><tr><th>subject</th><th>alerts</th><th>attack or benign habit</th></tr>
{% for subject, count, habit in p.subjects %}
<tr><td class="text">{{ subject }}</td><td>{{ count }}</td><td class="text">{{ habit }}</td></tr>
{% endfor %}</table>{% else %}<p class="muted">none</p>{% endif %}
{% endfor %}
</body></html>
"""


def render_report(result: Sweep) -> str:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(REPORT_TEMPLATE)
    plots = plot_png(result)
    plots.setdefault("detection", "")
    return template.render(sweep=result, plots=plots)


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rule", required=True, help="Rule to tune, e.g. password_spray.")
@click.option("--param", "param", required=True, help="Numeric setting of the rule.")
@click.option("--values", "values_text", required=True, help="Comma-separated values.")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Base policy (default: built-in defaults).",
)
@click.option("--host", help="Host of the logs when the directory is not a simulation.")
@click.option(
    "--out",
    "out_path",
    default=Path("tune-report.html"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the HTML report.",
)
def tune(
    directory: Path,
    rule: str,
    param: str,
    values_text: str,
    policy_path: Path | None,
    host: str | None,
    out_path: Path,
) -> None:
    """Sweep a rule's threshold over a replay; print a table, write an HTML report."""
    values = parse_values(rule, param, values_text)
    base = read_base_policy(policy_path)
    patched_policy(base, rule, param, values[0])  # refuse a bad value before parsing anything
    simulation = load_replay_directory(directory, host)
    parsed = parse_simulation(simulation)
    result = sweep(simulation, parsed, base, rule, param, values)
    click.echo(format_sweep(result))
    out_path.write_text(render_report(result), encoding="utf-8")
    click.echo(f"report: {out_path}")
