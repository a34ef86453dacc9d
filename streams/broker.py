"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars.

Development machines and CI have Java and Maven but no Docker engine, so the
broker used by `mailwarden broker start`, `make demo` and the `kafka_broker`
test fixture is the genuine Kafka server, fetched once with Maven and started
as a plain JVM process on loopback. `docker-compose.yml` runs the same
settings from the `apache/kafka` image; `docs/kafka.md` explains both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import click
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from mailwarden.config import ConfigError, load_config

KAFKA_VERSION = "4.0.2"
KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
REPO = Path(__file__).resolve().parent.parent
LIBS_ENV = "MAILWARDEN_KAFKA_LIBS"
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
LIBS_MARKER = ".complete"
STATE_FILE = "broker.json"
LOG_FILE = "broker.log"
LOCALHOST = "127.0.0.1"

# The settings every single-node deployment of ours shares; docker-compose.yml
# repeats them as KAFKA_* variables (a test keeps the two in step). Addresses,
# listeners and log.dirs are per deployment and added by server_properties().
SINGLE_NODE_SETTINGS: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    # Topics are created on purpose with their own settings (streams/topics.py);
    # a typo in a topic name must fail, not create a stray topic.
    "auto.create.topics.enable": "false",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # 50 partitions each (the defaults) make the first consumer group and the
    # first transaction slow on a small machine, for nothing on one node.
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.num.partitions": "8",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    # The cleaner's default 128 MiB buffer is a quarter of the test heap; the
    # short back-off lets compaction of mail.control be observed within seconds.
    "log.cleaner.dedupe.buffer.size": "16777216",
    "log.cleaner.backoff.ms": "1000",
}


class BrokerError(RuntimeError):
    """The broker could not be fetched, started, reached or stopped."""


def _default_cache_dir() -> Path:
    # A source checkout keeps the jars beside the code (.cache/ is ignored by
    # git); an installed package has no such place and uses the user's cache.
    if (REPO / "pyproject.toml").is_file():
        return REPO / ".cache" / "kafka" / KAFKA_VERSION
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return user_cache / "mailwarden" / "kafka" / KAFKA_VERSION


DEFAULT_CACHE_DIR = _default_cache_dir()


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _libs_complete(libs: Path) -> bool:
    marker = libs / LIBS_MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == _pom_digest()


def _has_kafka_jar(libs: Path) -> bool:
    return any(libs.glob("kafka_2.13-*.jar"))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ensure_kafka_libs(cache_dir: Path | None = None) -> Path:
    """Return a directory holding the Kafka broker jars, downloading them once.

    `cache_dir` defaults to `<repo>/.cache/kafka/4.0.2` in a source checkout,
    `~/.cache/mailwarden/kafka/4.0.2` otherwise; the jars go to its
    `libs/`. $MAILWARDEN_KAFKA_LIBS names a libs directory directly: one with
    Kafka jars already in it (a CI cache, the `libs/` of a Kafka tarball) is
    used as it is. A changed pom.xml invalidates the cache.
    """
    override = os.environ.get(LIBS_ENV)
    if cache_dir is None and override:
        libs = Path(override)
        if _has_kafka_jar(libs):
            return libs
    else:
        libs = (cache_dir or DEFAULT_CACHE_DIR) / "libs"
    if _libs_complete(libs):
        return libs
    if libs.exists() and not (libs / LIBS_MARKER).exists() and any(libs.iterdir()):
        raise BrokerError(f"{libs} holds files but no Kafka jars; refusing to replace it")
    _download_libs(libs)
    return libs


def _download_libs(libs: Path) -> None:
    """Run Maven into a scratch directory and rename it to `libs` when it succeeded,
    so an interrupted download is redone rather than half used."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not on PATH: it downloads the Kafka jars from Maven Central. "
            f"Install Maven 3.8+ (Debian: apt-get install maven), or set {LIBS_ENV} "
            f"to a directory holding the Kafka {KAFKA_VERSION} jars."
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        COPY_DEPENDENCIES,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={scratch}",
    ]
    try:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"fetching the Kafka jars took over 15 minutes: {' '.join(command)}"
            ) from exc
        if done.returncode != 0:
            raise BrokerError(
                f"fetching the Kafka jars failed (exit {done.returncode}): {' '.join(command)}\n"
                + _tail(done.stdout + done.stderr)
            )
        (scratch / LIBS_MARKER).write_text(_pom_digest() + "\n", encoding="utf-8")
        if libs.exists():
            shutil.rmtree(libs)
        try:
            scratch.rename(libs)
        except OSError:
            # Another process finished the same download first: use theirs.
            if not _libs_complete(libs):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java is not on PATH (and JAVA_HOME is unset): Kafka needs Java 17 or newer. "
            "Debian: apt-get install openjdk-17-jre-headless"
        )
    return java


def new_cluster_id() -> str:
    """16 random bytes, base64url without padding: the 22 characters KRaft expects."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def free_ports(count: int) -> list[int]:
    """Distinct ports on 127.0.0.1 that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _require_free(port: int) -> None:
    # Without this check a broker already on the port would answer the
    # readiness probe, and we would report success for someone else's server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the JVM sets it: a port in TIME_WAIT after a stop is free to Kafka.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise BrokerError(f"port {port} on {LOCALHOST} is already in use") from exc


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((LOCALHOST, port)) == 0


def server_properties(data_dir: Path, port: int, controller_port: int) -> dict[str, str]:
    return {
        **SINGLE_NODE_SETTINGS,
        "controller.quorum.voters": f"1@{LOCALHOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOCALHOST}:{port},CONTROLLER://{LOCALHOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "data"),
    }


def _write_properties(path: Path, properties: dict[str, str]) -> None:
    lines = [f"{key}={value}" for key, value in properties.items()]
    path.write_text("# written by streams/broker.py\n" + "\n".join(lines) + "\n", encoding="utf-8")


def _jvm_command(java: str, libs: Path, heap: str, main: list[str]) -> list[str]:
    return [
        java,
        "-Xms256m",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{libs}/*",
        *main,
    ]


def _format_storage(java: str, libs: Path, heap: str, config: Path) -> None:
    command = _jvm_command(
        java,
        libs,
        heap,
        # `--cluster-id=ID` in one word: a base64url id may start with "-", which
        # the tool's argument parser would take for an option.
        [
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={new_cluster_id()}",
            "-c",
            str(config),
        ],
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise BrokerError(
            f"formatting the Kafka storage failed (exit {done.returncode}):\n"
            + _tail(done.stdout + done.stderr)
        )


async def _probe(bootstrap: str) -> bool:
    """True once the broker answers a metadata request and lists itself."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError):  # TimeoutError is an OSError
        return False
    finally:
        await admin.close()


def _process_cmdline(pid: int) -> str | None:
    """The command line of a live process, None if gone; '' where /proc is absent."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return ""
    # A zombie has an empty command line: it has exited already.
    return raw.replace(b"\0", b" ").decode(errors="replace") or None


@dataclass(slots=True)
class KafkaBroker:
    """A running broker: where it listens, its process and its data."""

    data_dir: Path
    port: int
    controller_port: int
    pid: int
    format_seconds: float = 0.0
    startup_seconds: float = 0.0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        *,
        libs: Path | None = None,
        ready_timeout: float = 90.0,
        detach: bool = False,
    ) -> KafkaBroker:
        """Format `data_dir` if new, start the broker and wait until it serves.

        Blocking: from async code, call it through `asyncio.to_thread`. With
        `detach` the broker gets its own session, so it outlives the calling
        process and a Ctrl-C in its terminal; stop it later with `from_state`.
        Storage that was formatted before is kept, so a restarted broker has
        its topics and offsets.
        """
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        running = cls.from_state(data_dir)
        if running is not None:
            raise BrokerError(
                f"a broker is already running from {data_dir} "
                f"(pid {running.pid}, {running.bootstrap})"
            )
        java = find_java()
        libs = libs or ensure_kafka_libs()
        if port is None or controller_port is None:
            picked = free_ports(2)
            port = port or picked[0]
            controller_port = controller_port or picked[1]
        if port == controller_port:
            raise BrokerError(f"the broker and controller ports must differ (both {port})")
        _require_free(port)
        _require_free(controller_port)

        _write_properties(
            data_dir / "server.properties", server_properties(data_dir, port, controller_port)
        )
        format_seconds = 0.0
        if not (data_dir / "data" / "meta.properties").exists():
            began = time.monotonic()
            _format_storage(java, libs, heap, data_dir / "server.properties")
            format_seconds = time.monotonic() - began

        command = _jvm_command(
            java, libs, heap, ["kafka.Kafka", str(data_dir / "server.properties")]
        )
        began = time.monotonic()
        with (data_dir / LOG_FILE).open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                start_new_session=detach,
            )
        broker = cls(data_dir, port, controller_port, process.pid, format_seconds, 0.0, process)
        try:
            broker._wait_ready(ready_timeout)
        except BaseException:
            broker.stop()
            raise
        broker.startup_seconds = time.monotonic() - began
        broker._write_state()
        return broker

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {self._process.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if _accepts_connections(self.port) and asyncio.run(_probe(self.bootstrap)):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f} s; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(encoding="utf-8", errors="replace"), lines)
        except FileNotFoundError:
            return "(no broker log)"

    def _write_state(self) -> None:
        state = {
            "pid": self.pid,
            "bootstrap": self.bootstrap,
            "port": self.port,
            "controller_port": self.controller_port,
            "data_dir": str(self.data_dir),
            "kafka_version": KAFKA_VERSION,
        }
        self.state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_state(cls, data_dir: Path) -> KafkaBroker | None:
        """The broker a previous `start` left running from `data_dir`, if any.

        A state file whose process is gone is removed. The pid must still
        belong to a Kafka server reading this data directory's config, so a
        recycled pid never gets signalled.
        """
        data_dir = data_dir.resolve()
        state_path = data_dir / STATE_FILE
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            broker = cls(
                data_dir=data_dir,
                port=int(state["port"]),
                controller_port=int(state["controller_port"]),
                pid=int(state["pid"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerError(f"{state_path} is not a broker state file: {exc}") from exc
        if not broker.is_running():
            state_path.unlink(missing_ok=True)
            return None
        return broker

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        cmdline = _process_cmdline(self.pid)
        if cmdline is None:
            return False
        return cmdline == "" or ("kafka.Kafka" in cmdline and str(self.config_path) in cmdline)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after `timeout` seconds."""
        if self.is_running():
            self._signal(signal.SIGTERM)
            if not self._wait_exit(timeout):
                self._signal(signal.SIGKILL)
                if not self._wait_exit(10.0):
                    raise BrokerError(f"the Kafka broker (pid {self.pid}) survived SIGKILL")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            if json.loads(self.state_path.read_text(encoding="utf-8")).get("pid") == self.pid:
                self.state_path.unlink()

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def _wait_exit(self, timeout: float) -> bool:
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def __enter__(self) -> KafkaBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(slots=True, frozen=True)
class StartupTiming:
    format_seconds: float
    startup_seconds: float


def measure_broker_startup(runs: int = 3, heap: str = "512m") -> list[StartupTiming]:
    """Start and stop a broker `runs` times on fresh data directories.

    `startup_seconds` runs from launching the JVM to the first successful
    metadata answer; formatting the storage is timed apart. The jars are
    fetched before the first run, so no run pays for the download.
    """
    libs = ensure_kafka_libs()
    timings = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="mailwarden-kafka-bench-") as scratch:
            broker = KafkaBroker.start(Path(scratch), heap=heap, libs=libs)
            broker.stop()
        timing = StartupTiming(broker.format_seconds, broker.startup_seconds)
        click.echo(
            f"run {run}/{runs}: format {timing.format_seconds:.2f} s, "
            f"start to ready {timing.startup_seconds:.2f} s"
        )
        timings.append(timing)
    ready = sorted(t.startup_seconds for t in timings)
    click.echo(
        f"Kafka {KAFKA_VERSION} start-up over {runs} runs: "
        f"min {ready[0]:.2f} s, median {ready[len(ready) // 2]:.2f} s, max {ready[-1]:.2f} s"
    )
    return timings


# -- the `mailwarden broker` command -------------------------------------------------

DIR_OPTION = click.option(
    "--dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/kafka"),
    show_default=True,
    help="Data directory: storage, server.properties, broker.log and the state file.",
)


@click.group("broker")
def broker_group() -> None:
    """A local single-node Kafka broker (KRaft) from Maven Central jars, for development."""


@broker_group.command("start")
@DIR_OPTION
@click.option("--port", type=int, default=9092, show_default=True, help="Client port on 127.0.0.1.")
@click.option(
    "--controller-port", type=int, default=None, help="KRaft controller port [default: port + 1]."
)
@click.option("--heap", default="512m", show_default=True, help="JVM maximum heap.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="mailwarden.toml whose topic names and partitions to create.",
)
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait.")
def start_command(
    data_dir: Path,
    port: int,
    controller_port: int | None,
    heap: str,
    config_path: Path | None,
    timeout: float,
) -> None:
    """Start the broker in the background, create the topics, print the bootstrap address."""
    from streams.topics import ensure_topics

    try:
        config = load_config(config_path)
        running = KafkaBroker.from_state(data_dir)
        if running is not None:
            click.echo(f"already running (pid {running.pid}), data in {running.data_dir}", err=True)
            click.echo(running.bootstrap)
            return
        broker = KafkaBroker.start(
            data_dir,
            port=port,
            controller_port=controller_port or port + 1,
            heap=heap,
            ready_timeout=timeout,
            detach=True,
        )
        asyncio.run(ensure_topics(broker.bootstrap, config.topics, config.kafka.partitions))
    except (BrokerError, ConfigError, KafkaError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Kafka {KAFKA_VERSION} ready in {broker.startup_seconds:.1f} s "
        f"(format {broker.format_seconds:.1f} s), pid {broker.pid}, log {broker.log_path}; "
        f"topics created with {config.kafka.partitions} partitions",
        err=True,
    )
    click.echo(broker.bootstrap)


@broker_group.command("stop")
@DIR_OPTION
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds before SIGKILL."
)
def stop_command(data_dir: Path, timeout: float) -> None:
    """Stop the broker started from --dir (clean shutdown, then SIGKILL)."""
    try:
        broker = KafkaBroker.from_state(data_dir)
        if broker is None:
            click.echo(f"no broker running from {data_dir}", err=True)
            return
        broker.stop(timeout)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped Kafka broker pid {broker.pid} ({broker.bootstrap})", err=True)


@broker_group.command("status")
@DIR_OPTION
def status_command(data_dir: Path) -> None:
    """Print the bootstrap address if the broker runs and answers; exit 3 if it does not run."""
    try:
        broker = KafkaBroker.from_state(data_dir)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    if broker is None:
        click.echo(f"not running (no live broker for {data_dir})", err=True)
        sys.exit(3)
    if not asyncio.run(_probe(broker.bootstrap)):
        raise click.ClickException(
            f"pid {broker.pid} runs but {broker.bootstrap} does not answer; see {broker.log_path}"
        )
    click.echo(f"running, pid {broker.pid}, data in {broker.data_dir}", err=True)
    click.echo(broker.bootstrap)


@broker_group.command("topics")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="mailwarden.toml with the bootstrap, topic names and partitions.",
)
@click.option("--bootstrap", default=None, help="Broker to use instead of the configured one.")
def topics_command(config_path: Path | None, bootstrap: str | None) -> None:
    """Create the mailwarden topics on any cluster (existing ones are checked, not changed)."""
    from streams.topics import ensure_topics

    try:
        config = load_config(config_path)
        target = bootstrap or config.kafka.bootstrap
        asyncio.run(ensure_topics(target, config.topics, config.kafka.partitions))
    except (ConfigError, KafkaError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"topics ready on {target}", err=True)


@broker_group.command("fetch")
def fetch_command() -> None:
    """Download the Kafka jars with Maven (once; cached) and print where they are."""
    began = time.monotonic()
    try:
        libs = ensure_kafka_libs()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    jars = len(list(libs.glob("*.jar")))
    click.echo(
        f"{jars} jars for Kafka {KAFKA_VERSION} in {time.monotonic() - began:.1f} s", err=True
    )
    click.echo(str(libs))


@broker_group.command("bench")
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--heap", default="512m", show_default=True, help="JVM maximum heap.")
def bench_command(runs: int, heap: str) -> None:
    """Measure broker start-up time on fresh data directories (launch to first answer)."""
    try:
        measure_broker_startup(runs, heap)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
