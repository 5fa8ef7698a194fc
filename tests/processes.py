"""Run the processor in integration tests and read back what a run did.

- `ProcessorThread`: `processor.loop.Processor` in a thread of the test process.
- `ProcessorProcess`: `tmf-events run` as a child process configured by `TMF_EVENTS_*` env
  vars, its log in a file, `/readyz` polled on a free port, SIGTERM / SIGKILL and exit codes
  (`CliProcess`, which `tmf-events hub` shares: tests/hub_process.py).
- `run_cli`: any other `tmf-events` command, to completion.
- Reading a run's input and outcome: `send` (records with timestamps and headers),
  `read_input` (records exactly as the broker stores them), `replay_lines` / `expected`
  (what `processor.replay.replay` says the processor must emit for that input),
  `committed_offsets` / `wait_consumed` (the group's progress).

The console script is not needed: the child runs `python -m processor.cli` with the repository
on its `PYTHONPATH`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Self

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from processor.config import Settings
from processor.dev.broker import death_signal_preexec, free_port
from processor.dev.running import Running
from processor.loop import Processor
from processor.records import InputRecord
from processor.replay import replay
from tests.http_client import call
from tests.kafka_helpers import FAST_FETCH, wait_until

__all__ = [
    "REPO",
    "CliProcess",
    "ProcessorProcess",
    "ProcessorThread",
    "Send",
    "cli_env",
    "committed_offsets",
    "end_offsets",
    "exit_within",
    "expected",
    "processor_fields",
    "read_input",
    "replay_lines",
    "run_cli",
    "send",
    "spawn_cli",
    "stopping",
    "wait_consumed",
]

REPO = Path(__file__).resolve().parents[1]

#: librdkafka settings every test processor gets: a dead member is noticed within seconds,
#: and Tansu's first join (which waits out the rebalance timeout) stays short.
TEST_KAFKA: dict[str, str | int | float | bool] = {
    "session.timeout.ms": 6000,
    "max.poll.interval.ms": 10000,
    "fetch.wait.max.ms": 50,
}


def processor_fields(bootstrap: str, name: str, **overrides: Any) -> dict[str, Any]:
    """Settings fields of a test processor whose app id and topics all derive from `name`.

    `name` should come from `unique_name`; the changelog and dead-letter topics follow the
    app id (`<name>-state-changelog`, `<name>-dlq`).
    """
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": name,
        "input_topic": f"{name}.changes",
        "service_topic": f"{name}.service.events",
        "resource_topic": f"{name}.resource.events",
        "instance_id": "replica-0",
        "http_port": 0,
        "commit_interval_ms": 100,
        "kafka": dict(TEST_KAFKA),
    }
    fields.update(overrides)
    return fields


# -- in a thread -------------------------------------------------------------------------------


class ProcessorThread(Running):
    """`Processor(settings).run()` in a daemon thread; `stop()` returns its exit code."""

    def __init__(self, settings: Settings | Mapping[str, Any]) -> None:
        self.settings = settings if isinstance(settings, Settings) else Settings(**settings)
        self.stop_event = threading.Event()
        self.processor = Processor(self.settings, stop=self.stop_event)
        self.result: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"processor-{self.settings.instance_id}", daemon=True
        )

    def _run(self) -> None:
        try:
            self.result = self.processor.run()
        except BaseException as exc:  # handed to the test by stop()
            self.error = exc

    def start(self) -> Self:
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def ready(self) -> bool:
        return self.alive and self.processor.readiness()[0]

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.ready() or not self.alive,
            timeout,
            message=lambda: f"processor not ready: {self.processor.readiness()[1]}",
        )
        if not self.alive:
            self._raise("processor ended before it was ready")

    def stop(self, timeout: float = 60) -> int:
        self.stop_event.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"processor did not stop within {timeout:g} s")
        if self.error is not None:
            self._raise("processor failed")
        assert self.result is not None
        return self.result

    def _raise(self, text: str) -> None:
        if self.error is not None:
            raise AssertionError(f"{text}: {self.error!r}") from self.error
        raise AssertionError(f"{text} (returned {self.result})")

    def close(self) -> None:
        """Stop without judging the run (a failed test's error stays the one reported)."""
        self.stop_event.set()
        self.thread.join(60)

    def leave(self, failed: bool) -> None:
        if failed:
            self.close()
        else:  # a block that ended well also checks how the processor ended
            self.stop()


# -- as a child process ------------------------------------------------------------------------


def cli_env(fields: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment of a `tmf-events` child: no ambient `TMF_EVENTS_*`, plus `fields`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMF_EVENTS_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) if not path else f"{REPO}{os.pathsep}{path}"
    for name, value in (fields or {}).items():
        # numbers as JSON numbers, lists and objects as JSON (docs/design.md#interfaces)
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        env[f"TMF_EVENTS_{name.upper()}"] = text
    return env


def run_cli(
    args: Sequence[str], *, fields: Mapping[str, Any] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one `tmf-events` command to completion; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=cli_env(fields),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_cli(
    args: Sequence[str],
    *,
    fields: Mapping[str, Any] | None = None,
    stdout: IO[bytes],
    stderr: IO[bytes] | int = subprocess.STDOUT,
) -> subprocess.Popen[bytes]:
    """Start one `tmf-events` command that runs until stopped (`api`, `tail`, ...); its
    output goes to `stdout` (a file the test reads while it runs) and `stderr`."""
    return subprocess.Popen(
        [sys.executable, "-m", "processor.cli", *args],
        env=cli_env(fields),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )


def exit_within(proc: subprocess.Popen[bytes], seconds: float) -> int:
    """The exit code of `proc`; fails when it is still running `seconds` from now."""
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.args!r} still running after {seconds:g} s") from None


@contextlib.contextmanager
def stopping(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Kill `proc` on the way out if the test left it running (its failure stays the one
    reported)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


class CliProcess(Running):
    """`tmf-events <command>` in a child process, configured by env vars, logging to
    `log_path`.

    Every `start()` picks a free HTTP port and appends to the same log file, so one object
    can be killed and started again (a restart of the same replica).
    """

    command: ClassVar[str]

    def __init__(self, fields: Mapping[str, Any], log_path: Path, args: Sequence[str] = ()) -> None:
        self.fields = dict(fields)
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> Self:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.port = free_port()
        self.starts += 1
        fields = {**self.fields, "http_port": self.port}
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} (http port {self.port}) =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processor.cli", self.command, *self.args],
                env=cli_env(fields),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=death_signal_preexec(signal.SIGKILL),  # noqa: PLW1509 (no threads run here yet)
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def readyz(self) -> tuple[int, bytes] | None:
        """(status, body) of GET /readyz, or None when nothing answers."""
        try:
            reply = call(self.port, "/readyz", timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return reply.status, reply.body

    def ready(self) -> bool:
        answer = self.readyz()
        return answer is not None and answer[0] == 200

    def wait_ready(self, timeout: float = 60) -> Self:
        """Until /readyz says 200; fails at once (with the log) if the process ended."""
        wait_until(
            lambda: not self.alive or self.ready(),
            timeout,
            interval=0.1,
            message=lambda: (
                f"tmf-events {self.command} not ready on port {self.port}; log:\n"
                + self._log_tail()
            ),
        )
        if not self.alive:
            raise AssertionError(
                f"tmf-events {self.command} exited with {self.returncode()} before it was ready;"
                " log:\n" + self._log_tail()
            )
        return self

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"tmf-events {self.command} did not exit within {timeout:g} s; log:\n"
                + self._log_tail()
            ) from None

    def exited_within(self, timeout: float) -> int | None:
        """The exit code if the process ends within `timeout` s, else None (still running)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (the process is killed if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        finally:
            self.close()

    def kill(self) -> int:
        """SIGKILL (kill -9) and reap; returns the exit code (-9)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


class ProcessorProcess(CliProcess):
    """`tmf-events run` (`args` after it)."""

    command = "run"


# -- input and outcome -------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """One record to produce: a timestamp (ms, None = now) and headers besides key and value."""

    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None  # None: the murmur2_random partitioner (by key)


def produce_one(
    producer: Producer,
    topic: str,
    record: Send,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Produce one record, serving deliveries while the local queue is full."""
    kwargs: dict[str, Any] = {"key": record.key, "value": record.value}
    if record.timestamp_ms is not None:
        kwargs["timestamp"] = record.timestamp_ms
    if record.headers:
        kwargs["headers"] = list(record.headers)
    if record.partition is not None:
        kwargs["partition"] = record.partition
    while True:
        try:
            producer.produce(topic, on_delivery=on_delivery, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


def send(bootstrap: str, topic: str, records: Iterable[Send], timeout: float = 60) -> int:
    """Produce in order (idempotent, keyed like the upstream); return how many were sent."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    count = 0
    for record in records:
        produce_one(producer, topic, record, on_delivery)
        count += 1
        producer.poll(0)
    remaining = producer.flush(timeout)
    if errors or remaining:
        raise AssertionError(f"produce to {topic}: {remaining} undelivered, errors {errors[:3]}")
    return count


def read_input(bootstrap: str, topic: str, timeout: float = 60) -> list[InputRecord]:
    """Every record of `topic` as the processor sees it (timestamps and headers included),
    by partition and offset; reads until the end of every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-input-{os.getpid()}-{time.monotonic_ns()}",  # never joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            **FAST_FETCH,
        }
    )
    out: list[InputRecord] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        assert meta.error is None, f"topic {topic}: {meta.error}"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        at_end = dict.fromkeys(meta.partitions, False)
        deadline = time.monotonic() + timeout
        while not all(at_end.values()):
            if time.monotonic() > deadline:
                raise AssertionError(f"read_input {topic}: no end after {timeout:g} s")
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                p = msg.partition()
                assert p is not None
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    at_end[p] = True
                    continue
                at_end[p] = False
                ts_type, ts = msg.timestamp()
                out.append(
                    InputRecord(
                        topic=topic,
                        partition=p,
                        offset=msg.offset() or 0,
                        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
                        key=msg.key(),
                        value=msg.value(),
                        headers=_headers(msg),
                    )
                )
    finally:
        consumer.close()
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


def _headers(msg: Message) -> list[tuple[str, bytes | None]]:
    raw: Any = msg.headers() or []
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in raw]


_RECORD_MEMBERS = ("key", "partition", "offset", "timestamp", "headers")


def replay_lines(records: Sequence[InputRecord]) -> list[bytes]:
    """The `tmf-events replay` input (docs/design.md#interfaces) standing for exactly these Kafka
    records.

    Records of each partition keep their order. Raises ValueError for a record the replay
    format cannot express: a value that is not a JSON object can only be a raw line, which
    stands for a keyless, header-less record of partition 0 whose offset is its line number.
    """
    lines: list[bytes] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        number = len(lines)
        try:
            obj = None if record.value is None else orjson.loads(record.value)
        except orjson.JSONDecodeError:
            obj = None
        if record.value is not None and not isinstance(obj, dict):
            raw = record.value
            faithful = (
                record.key is None
                and not record.headers
                and record.partition == 0
                and record.offset == number
                and b"\n" not in raw
                and raw.rstrip(b"\r\n") == raw
                and raw.strip() != b""
            )
            if not faithful:
                raise ValueError(f"replay cannot express {record!r}")
            lines.append(raw)
            continue
        if obj is not None:
            if set(obj) & set(_RECORD_MEMBERS) or orjson.dumps(obj) != record.value:
                raise ValueError(f"replay would not keep the bytes of {record!r}")
            if set(obj) == {"value"} and obj["value"] is None:
                raise ValueError(f"replay would read {record!r} as a tombstone")
        else:
            obj = {"value": None}
        if record.key is not None:
            try:
                key: str | None = record.key.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"replay keys are text: {record!r}") from None
        else:
            key = None
        headers: dict[str, str | None] = {}
        for name, value in record.headers:
            if name in headers:
                raise ValueError(f"replay headers are an object (no duplicates): {record!r}")
            headers[name] = None if value is None else value.decode("utf-8")
        meta: dict[str, Any] = {"key": key, "partition": record.partition, "offset": record.offset}
        if record.timestamp_ms is not None:
            meta["timestamp"] = record.timestamp_ms
        if headers:
            meta["headers"] = headers
        lines.append(orjson.dumps({**obj, **meta}))
    return lines


def expected(records: Sequence[InputRecord], settings: Settings) -> list[dict[str, Any]]:
    """The messages `replay` says the processor emits for `records`, in replay order."""
    return list(replay(replay_lines(records), settings))


def end_offsets(records: Sequence[InputRecord]) -> dict[int, int]:
    """Next offset per partition of a fully read input (from the records themselves: Tansu's
    ListOffsets answers are wrong, docs/testing.md#brokers-for-tests)."""
    out: dict[int, int] = {}
    for r in records:
        out[r.partition] = max(out.get(r.partition, 0), r.offset + 1)
    return out


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int], timeout: float = 15
) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none), without joining it."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    wanted = [TopicPartition(topic, p) for p in partitions]
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                got = consumer.committed(wanted, timeout=max(0.1, deadline - time.monotonic()))
                break
            except KafkaException:
                # e.g. the coordinator is busy with a rebalance or a fenced member: ask again
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in got}


def wait_consumed(
    bootstrap: str, group: str, topic: str, ends: Mapping[int, int], timeout: float = 90
) -> None:
    """Until the group's committed offsets reach `ends` (partition -> next offset)."""
    last: dict[int, int] = {}

    def done() -> bool:
        last.clear()
        last.update(committed_offsets(bootstrap, group, topic, ends))
        return all(last.get(p, -1) >= end for p, end in ends.items())

    wait_until(
        done,
        timeout,
        interval=0.2,
        message=lambda: f"group {group} committed {last}, input ends at {dict(ends)}",
    )
