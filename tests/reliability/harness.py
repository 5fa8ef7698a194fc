"""What the reliability tests share: profiles, paced loads, progress, the history check.

Profiles (env `RELIABILITY_PROFILE`): `short` (default, CI) keeps the whole folder within a
few minutes on a busy 2-core machine; `long` (`make reliability`) runs the issue's sizes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from confluent_kafka.admin import AdminClient

from processor.config import Settings
from processor.dev.broker import free_port, tansu_command
from processor.records import InputRecord
from tests.history import Expectation, HistoryReport, check_history, expected_from_input
from tests.kafka_helpers import Record, consume_all, wait_until
from tests.processes import (
    ProcessorProcess,
    committed_offsets,
    end_offsets,
    read_input,
)
from tests.schema_check import assert_valid_event

LONG = os.environ.get("RELIABILITY_PROFILE", "short").strip().lower() == "long"
PROFILE = "long" if LONG else "short"


def pick(short: Any, long: Any) -> Any:
    """The value of the running profile."""
    return long if LONG else short


# -- progress ---------------------------------------------------------------------------------


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Records the group has committed on `topic` so far (all partitions)."""
    offsets = committed_offsets(bootstrap, group, topic, range(partitions))
    return sum(max(o, 0) for o in offsets.values())


def wait_progress(
    bootstrap: str,
    group: str,
    topic: str,
    partitions: int,
    target: int,
    timeout: float,
    alive: Sequence[ProcessorProcess] = (),
) -> int:
    """Until the group committed at least `target` records; fails at once if one of the
    `alive` replicas exits."""
    seen = [0]

    def reached() -> bool:
        _check_alive(alive)
        seen[0] = committed_total(bootstrap, group, topic, partitions)
        return seen[0] >= target

    wait_until(
        reached,
        timeout,
        interval=0.2,
        message=lambda: f"group {group} committed {seen[0]} records, waiting for {target}",
    )
    return seen[0]


def drain(
    bootstrap: str,
    settings: Settings,
    sent: int,
    timeout: float,
    alive: Sequence[ProcessorProcess] = (),
) -> list[InputRecord]:
    """Read the input back (exactly as stored) and wait until the group committed all of it;
    fails at once if one of the `alive` replicas exits meanwhile."""
    inputs = read_input(bootstrap, settings.input_topic, timeout=120)
    assert len(inputs) == sent, f"{len(inputs)} input records read back, {sent} produced"
    ends = end_offsets(inputs)
    last: dict[int, int] = {}

    def consumed() -> bool:
        _check_alive(alive)
        last.clear()
        last.update(committed_offsets(bootstrap, settings.app_id, settings.input_topic, ends))
        return all(last.get(p, -1) >= end for p, end in ends.items())

    wait_until(
        consumed,
        timeout,
        interval=0.2,
        message=lambda: f"group {settings.app_id} committed {last}, input ends at {ends}",
    )
    return inputs


class ReplicaDiedError(AssertionError):
    """A replica that should keep running exited."""


def _check_alive(procs: Sequence[ProcessorProcess]) -> None:
    for proc in procs:
        if not proc.alive:
            raise ReplicaDiedError(
                f"{proc.log_path.name}: exited with {proc.returncode()}; log ends:\n"
                + "\n".join(proc.log().splitlines()[-60:])
            )


def read_output(bootstrap: str, settings: Settings, timeout: float = 180) -> list[Record]:
    """Every record of the event and dead-letter topics, read_committed."""
    topics = [settings.service_topic, settings.resource_topic, settings.dlq_topic]
    return consume_all(bootstrap, topics, timeout=timeout)


def history(
    bootstrap: str,
    settings: Settings,
    inputs: Sequence[InputRecord],
    title: str,
    *,
    notes: Sequence[str] = (),
) -> tuple[HistoryReport, list[Record], Expectation]:
    """The history report of a finished run, titled with the profile it ran in; printed, so
    `pytest -rA` shows it."""
    output = read_output(bootstrap, settings)
    expectation = expected_from_input(inputs, settings)
    report = check_history(
        expectation,
        output,
        title=f"{title} ({PROFILE} profile)",
        validate=lambda r: assert_valid_event((r.headers, r.value)),
    )
    report.notes.extend(notes)
    print(f"\n{report.table()}", flush=True)
    return report, output, expectation


def assert_no_traceback(*procs: ProcessorProcess) -> None:
    for proc in procs:
        log = proc.log()
        assert "Traceback" not in log, f"traceback in {proc.log_path.name}:\n{log[-4000:]}"


@contextlib.contextmanager
def closing(*procs: ProcessorProcess) -> Iterator[None]:
    """Kill whatever replica is still running when the block ends (e.g. a failed test)."""
    try:
        yield
    finally:
        for proc in procs:
            proc.close()


# -- a Tansu broker advertising another address (a proxy in front of it) ----------------------


_TANSU_ENV_DROP = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE")


class AdvertisedTansu:
    """Tansu listening on 127.0.0.1:`port` and advertising another host:port to clients.

    `processor.dev.broker.EmbeddedBroker` advertises the port it listens on; noida-db cannot
    advertise anything else at all (`--host` is both), so an outage behind a proxy needs Tansu
    (`--advertised-listener-url`), started here. Data in memory; `stop()` ends it.
    """

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()  # known before start: the proxy forwards here
        self.advertised = ""
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, advertised: str, timeout: float = 60) -> Self:
        """Start, advertising `advertised` (host:port, which must forward here by then)."""
        self.advertised = advertised
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_DROP}
        env["NO_COLOR"] = "1"
        argv = [
            *tansu_command(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.advertised}",
            "--storage-engine",
            "memory://tansu/",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
                env=env,
                start_new_session=True,
            )
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}", "log_level": 0})

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            try:
                meta = admin.list_topics(timeout=1)
            except Exception:
                return False
            return any(f"{b.host}:{b.port}" == self.advertised for b in meta.brokers.values())

        wait_until(answers, timeout, interval=0.1, message=lambda: f"tansu: {self.logs()}")
        return self

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self.proc = None
