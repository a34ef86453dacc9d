"""The `mailwarden` command: one program, one subcommand per job.

Subcommands are imported only when run, so `mailwarden parse` does not pay for
loading Faust, and each subcommand lives beside the code it drives.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command
SUBCOMMANDS: dict[str, str] = {
    "parse": "mailwarden.cmd_parse:parse",
    "tail": "streams.publisher:tail_command",
    "worker": "streams.worker:worker_command",
    "adapter": "streams.adapters.cli:adapter_group",
    "broker": "streams.broker:broker_group",
    "replay": "mailwarden.cmd_replay:replay",
    "bench": "mailwarden.bench:bench_group",
    "demo": "mailwarden.demo:demo",
    "corpus-check": "mailwarden.corpus:corpus_check",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{target} is not a command")
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="mailwarden")
def main() -> None:
    """Real-time credential-theft and abuse detection for Postfix and Dovecot."""
