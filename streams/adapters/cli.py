"""`mailwarden adapter ...`: one command per enforcement adapter, plus a benchmark."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mailwarden.config import Config, ConfigError, load_config
from streams.adapters.control import ControlConsumer
from streams.adapters.dovecot_policy import DovecotPolicyServer
from streams.adapters.kick import SessionKicker
from streams.adapters.mapfile import (
    FORMATS,
    MapfileMetrics,
    MapfileWriter,
    TrackedCommands,
    check_outputs,
    mapfile_overrides,
    run_mapfile_adapter,
)
from streams.adapters.metrics import AdapterMetrics
from streams.adapters.postfix_policy import PostfixPolicyServer
from streams.adapters.report_sink import KafkaEventSink
from streams.adapters.service import AdapterRuntime, Background, build_runtime, serve
from streams.adapters.settings import AdapterSettings, load_adapter_settings
from streams.adapters.socketmap import SocketmapServer
from streams.adapters.tcp import parse_listen

F = TypeVar("F", bound=Callable[..., Any])


def _common_options(func: F) -> F:
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="MAILWARDEN_CONFIG",
            help="mailwarden TOML config (broker, topics, signing key, [adapters]).",
        ),
        click.option("--listen", help="HOST:PORT to serve on (default from [adapters])."),
        click.option(
            "--metrics-port",
            type=click.IntRange(1, 65535),
            help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
            default="INFO",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(config_path: Path | None, log_level: str) -> tuple[Config, AdapterSettings]:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
        config.require_signing_key()
        return config, load_adapter_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _checked_listen(listen: str) -> str:
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from exc
    return listen


@click.group("adapter")
def adapter_group() -> None:
    """Enforcement adapters: answer Postfix and Dovecot from mail.control."""


@adapter_group.command("postfix-policy")
@_common_options
def postfix_policy(
    config_path: Path | None, listen: str | None, metrics_port: int | None, log_level: str
) -> None:
    """Postfix policy delegation server (check_policy_service inet:HOST:PORT)."""
    config, settings = _load(config_path, log_level)
    runtime = build_runtime("postfix-policy", config, settings)

    def make(rt: AdapterRuntime) -> PostfixPolicyServer:
        return PostfixPolicyServer(
            rt.active, rt.metrics, limits=settings.limits, min_tls=settings.postfix_policy_min_tls
        )

    address = _checked_listen(listen or settings.postfix_policy_listen)
    asyncio.run(serve(runtime, make, address, metrics_port=metrics_port))


@adapter_group.command("socketmap")
@_common_options
def socketmap(
    config_path: Path | None, listen: str | None, metrics_port: int | None, log_level: str
) -> None:
    """Postfix socketmap server: maps sasl_access and sender_transport."""
    config, settings = _load(config_path, log_level)
    runtime = build_runtime("socketmap", config, settings)

    def make(rt: AdapterRuntime) -> SocketmapServer:
        return SocketmapServer(
            rt.active,
            rt.metrics,
            isolation_transport=settings.isolation_transport,
            limits=settings.limits,
        )

    address = _checked_listen(listen or settings.socketmap_listen)
    asyncio.run(serve(runtime, make, address, metrics_port=metrics_port))


@adapter_group.command("dovecot-policy")
@_common_options
def dovecot_policy(
    config_path: Path | None, listen: str | None, metrics_port: int | None, log_level: str
) -> None:
    """Dovecot auth policy server (auth_policy_server_url); reports go to mail.events."""
    config, settings = _load(config_path, log_level)
    address = _checked_listen(listen or settings.dovecot_policy_listen)

    async def main() -> None:
        sink = KafkaEventSink(config.kafka.bootstrap, config.topics.events)
        background: list[Background] = [sink]
        kicker = SessionKicker(settings.kick) if settings.kick is not None else None
        if kicker is not None and not kicker.available():
            logging.getLogger(__name__).warning(
                "%s not found: open sessions will not be kicked "
                "(set kick_sessions = false in [adapters.dovecot_policy] to silence this)",
                kicker.settings.doveadm,
            )
            kicker = None
        if kicker is not None:
            background.append(kicker)
        runtime = build_runtime(
            "dovecot-policy", config, settings, kicker.request if kicker else None
        )

        def make(rt: AdapterRuntime) -> DovecotPolicyServer:
            return DovecotPolicyServer(
                rt.active,
                sink,
                rt.metrics,
                authorization=settings.dovecot_authorization,
                host=config.host,
            )

        await serve(runtime, make, address, metrics_port=metrics_port, background=background)

    asyncio.run(main())


@adapter_group.command("mapfile")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MAILWARDEN_CONFIG",
    help="mailwarden TOML config (broker, topics, signing key, [adapters.mapfile]).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write this one file instead of the outputs in [adapters.mapfile].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="postfix-texthash",
    show_default=True,
    help="Format of --output.",
)
@click.option(
    "--action",
    "actions",
    multiple=True,
    default=("block_ip",),
    show_default=True,
    help="Action written to --output (repeat for several).",
)
@click.option(
    "--reload-command",
    help="Run after a change, e.g. 'postfix reload'; split into arguments, never a shell.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
def mapfile(
    config_path: Path | None,
    output: Path | None,
    fmt: str,
    actions: tuple[str, ...],
    reload_command: str | None,
    metrics_port: int | None,
    log_level: str,
) -> None:
    """Write the active blocks to map files (texthash, cidr, plain list) and reload the MTA."""
    config, settings = _load(config_path, log_level)
    try:
        mapfile_config = mapfile_overrides(settings.mapfile, output, fmt, actions, reload_command)
        check_outputs(mapfile_config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    active = TrackedCommands(
        config.require_signing_key(), settings.smtp_responses, settings.replies
    )
    control = ControlConsumer(
        active, config.kafka.bootstrap, config.topics.control, client_id="mailwarden-mapfile"
    )
    metrics = AdapterMetrics(active, control)
    writer = MapfileWriter(active, mapfile_config, MapfileMetrics(metrics))
    asyncio.run(run_mapfile_adapter(writer, control, metrics, metrics_port))


@adapter_group.command("bench-policy")
@click.option("--connections", type=click.IntRange(1, 1000), default=8, show_default=True)
@click.option("--requests", type=click.IntRange(1), default=40000, show_default=True)
@click.option(
    "--target", help="HOST:PORT of a running postfix-policy adapter (default: spawn one)."
)
def bench_policy(connections: int, requests: int, target: str | None) -> None:
    """Policy answers per second and latency over persistent loopback connections."""
    from streams.adapters.bench import run_bench

    address = parse_listen(_checked_listen(target)) if target else None
    result = run_bench(connections, requests, target=address)
    click.echo(result.summary())
