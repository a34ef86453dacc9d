"""The `mailwarden` command: one program, one subcommand per job.

Subcommands are imported only when run, so `mailwarden parse` does not pay for
loading Faust, and each subcommand lives beside the code it drives.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> ("module:attribute" of a click command, one-line help shown by --help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("mailwarden.cmd_parse:parse", "Print one normalized event JSON per log line."),
    "tail": ("streams.publisher:tail_command", "Follow log files and publish their events."),
    "worker": ("streams.worker:worker_command", "Run the detection worker (Faust)."),
    "adapter": ("streams.adapters.cli:adapter_group", "Enforcement adapters for Postfix, Dovecot."),
    "broker": ("streams.broker:broker_group", "Run a local Kafka broker from Maven jars."),
    "replay": ("mailwarden.cmd_replay:replay", "Replay historic logs through the rules."),
    "bench": ("mailwarden.bench:bench_group", "Measure throughput and latency."),
    "demo": ("mailwarden.demo:demo", "Watch an attack get caught and refused."),
    "corpus-check": ("mailwarden.corpus:corpus_check", "Compare parsers with other projects."),
    "notifier": ("streams.notifier:notifier_command", "Notify users and the SOC by webhook."),
    "simulate": ("mailwarden.simulate:simulate", "Write a labelled population of mail logs."),
    "evaluate": ("mailwarden.evaluate:evaluate", "Replay a simulation and score detection."),
    "tune": ("mailwarden.tune:tune", "Sweep a rule's threshold and report."),
    "native": ("mailwarden.native:native_group", "Build the Rust parsers; say which run."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        target = entry[0]
        module_name, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{target} is not a command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(SUBCOMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="mailwarden")
def main() -> None:
    """Real-time credential-theft and abuse detection for Postfix and Dovecot."""


if __name__ == "__main__":
    main()
