"""End-to-end benchmark: tmf-events against a transactional passthrough and Quix Streams.

    python bench/run.py [--quick] [--records N] [--bootstrap-servers HOSTS] ...   (make bench)

On one broker (embedded noida-db unless `--bootstrap-servers`), over one seeded input topic:

1. throughput of the passthrough (transactional copy), tmf-events (the real Processor) and
   Quix Streams doing the same job, each in a process of its own with its own group;
2. end-to-end latency of tmf-events at half its measured maximum rate (and at a quarter):
   records are produced at that rate with `observedAt` = send time, and a read_committed
   consumer takes each event's arrival minus its `ce_time` (= the input's `observedAt`);
3. a py-spy profile of tmf-events over the same input (an extra run, not a measured one);
4. time to ready after a restart with a pre-filled changelog (default 1M keys) and the
   resident memory those keys take once restored and read with `store.get`.

Prints a table with each target's PASS/MISS, writes `bench/results/latest.json` (and a copy
named after the run), `bench/results/profile.svg` and the worker logs in `bench/results/`.
The machine is shared: the load average before and after is part of the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.cimpl import NewTopic  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402

from processor import clients  # noqa: E402
from processor.config import Settings  # noqa: E402
from processor.dev.broker import EmbeddedBroker  # noqa: E402
from processor.dev.load import TokenBucket, produce_load  # noqa: E402
from processor.dev.synthetic import Generator, Mix, SyntheticRecord, rfc3339_ms  # noqa: E402
from processor.records import InputRecord  # noqa: E402
from processor.state.codec import decode_state, encode_state  # noqa: E402
from processor.state.model import State, StoredEvent  # noqa: E402
from processor.task import new_task  # noqa: E402

RESULTS = BENCH / "results"
QUIX_VENV = BENCH / ".venv-quix"
QUIX_REQUIREMENTS = BENCH / "requirements-quix.txt"
WORKER = BENCH / "worker.py"

# The targets (a benchmark's, not a test's): name -> (description, comparison, bound).
TARGETS = {
    "tmf_vs_quix": ("tmf-events / Quix Streams throughput", ">=", 3.0),
    "tmf_vs_passthrough": ("tmf-events / passthrough throughput", ">=", 0.60),
    "restart_ready_s": ("ready after restart with {keys} keys, from snapshots (s)", "<=", 5.0),
    "memory_mb_per_1m": ("resident memory per 1M keys (MB)", "<=", 300.0),
}

# Same consumer-group timing for every peer (the passthrough and Quix peers set these too):
# Tansu's first join waits out the rebalance timeout (docs/testing.md#brokers-for-tests).
GROUP_KAFKA: dict[str, Any] = {"session.timeout.ms": 6000, "max.poll.interval.ms": 10000}


# noida-db 0.2.3 ignores fetch.max.bytes and max.partition.fetch.bytes: a fetch from offset 0
# returns everything up to the end of every partition asked for. librdkafka refuses responses
# over receive.message.max.bytes (default 100 MB) and retries the same fetch forever, so any
# topic over 100 MB (the 100k-record input, a 1M-key changelog) could not be read at all.
# Every peer gets the largest value librdkafka accepts on noida; Kafka needs nothing.
NOIDA_RECEIVE_MAX = 2_147_483_647


class StepError(Exception):
    """A step could not produce its figure; the message says why."""


# -- options ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fast sanity run (smaller defaults)")
    p.add_argument("--records", type=int, help="input records (default 100000; quick 20000)")
    p.add_argument("--keys", type=int, default=10_000, help="distinct instance ids")
    p.add_argument("--partitions", type=int, default=6, help="input topic partitions")
    p.add_argument("--instance-bytes", type=int, default=1000, help="instance JSON size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-batch", type=int, default=2000, help="records per transaction")
    p.add_argument("--commit-interval-ms", type=int, default=100)
    p.add_argument(
        "--restart-keys", type=int, help="changelog keys to restore (default 1M; quick 200k)"
    )
    p.add_argument("--latency-seconds", type=float, help="paced latency run (default 30; quick 10)")
    p.add_argument(
        "--latency-rate",
        type=float,
        help="records/s of the latency run (default: half the measured tmf-events rate)",
    )
    p.add_argument(
        "--latency-low",
        type=float,
        help="also measure at this share of the max rate (default 0.25; quick: none; 0: none)",
    )
    p.add_argument(
        "--changelog-compression",
        default="none",
        help="compression.type of the changelog prefill (default none, as the processor writes)",
    )
    p.add_argument("--broker", choices=["noida", "tansu"], default="noida", help="embedded one")
    p.add_argument("--bootstrap-servers", help="use this broker instead of an embedded one")
    p.add_argument(
        "--kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka setting for every peer's clients (repeatable)",
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated steps to leave out: passthrough,tmf,quix,latency,profile,restart",
    )
    p.add_argument(
        "--quix-python",
        type=Path,
        help=f"interpreter with quixstreams installed (default: {QUIX_VENV.name}, made on use)",
    )
    p.add_argument("--py-spy", dest="py_spy", help="py-spy executable (default: found on PATH)")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON report")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics")
    args = p.parse_args(argv)
    if args.records is None:
        args.records = 20_000 if args.quick else 100_000
    if args.restart_keys is None:
        args.restart_keys = 200_000 if args.quick else 1_000_000
    if args.latency_seconds is None:
        args.latency_seconds = 10.0 if args.quick else 30.0
    if args.latency_low is None:
        args.latency_low = 0.0 if args.quick else 0.25
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"passthrough", "tmf", "quix", "latency", "profile", "restart"}
    if unknown:
        p.error(f"unknown steps in --skip: {', '.join(sorted(unknown))}")
    extra: dict[str, Any] = {}
    for item in args.kafka:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--kafka wants KEY=VALUE, not {item!r}")
        extra[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value
    args.kafka = extra
    return args


# -- small helpers ----------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )


# -- workers ----------------------------------------------------------------------------------


class Worker:
    """A `bench/worker.py` child: JSON lines from its stdout, its stderr in a log file."""

    def __init__(
        self, name: str, python: Path | str, mode: str, args: dict[str, Any], log: Path
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle: IO[bytes] = log.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("VIRTUAL_ENV", None)
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), mode, json.dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            cwd=REPO,
            env=env,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout").start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library printing to stdout
            if isinstance(event, dict) and "event" in event:
                self.events.put(event)
        self.events.put({"event": "exit"})

    def wait(
        self, kind: str, timeout: float, tick: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """The next event of `kind`; StepError if the worker exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if tick is not None:
                tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise StepError(f"{self.name}: no {kind!r} within {timeout:.0f} s; {self.tail()}")
            try:
                event = self.events.get(timeout=min(0.5, remaining))
            except queue.Empty:
                continue
            if event["event"] == kind:
                return event
            if event["event"] == "exit":
                code = self.proc.wait()
                raise StepError(f"{self.name} exited with code {code}; {self.tail()}")

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_handle.close()

    def tail(self, lines: int = 15) -> str:
        if not self._log_handle.closed:
            self._log_handle.flush()
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"log {self.log}:\n" + "\n".join(text[-lines:])


# -- the Quix Streams interpreter -------------------------------------------------------------


def quix_python(args: argparse.Namespace, console: Console) -> Path:
    """An interpreter with quixstreams: `--quix-python`, else bench/.venv-quix (made here).

    Quix Streams 3.x pins confluent-kafka < 2.13 while this project needs >= 2.16, so it never
    goes into the project's environment.
    """
    if args.quix_python is not None:
        return Path(args.quix_python)
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / ".installed"
    wanted = hashlib.sha256(QUIX_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    with console.status(f"creating {QUIX_VENV.relative_to(REPO)} (Quix Streams) ..."):
        base = getattr(sys, "_base_executable", sys.executable)
        for command in (
            [base, "-m", "venv", "--clear", str(QUIX_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(QUIX_REQUIREMENTS)],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StepError(
                    f"cannot set up the Quix virtualenv ({' '.join(command[:4])} ...):\n"
                    + (done.stderr or done.stdout)[-2000:]
                )
    stamp.write_text(wanted + "\n")
    return python


# -- the benchmark ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = f"bench-{stamp}-{uuid.uuid4().hex[:6]}"
        self.logs = RESULTS / "logs" / self.run_id
        self.bootstrap = ""
        self.topics: list[str] = []
        self.input_topic = f"{self.run_id}.input"
        self.kafka: dict[str, Any] = {**GROUP_KAFKA, **args.kafka}
        self.report: dict[str, Any] = {
            "run_id": self.run_id,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": {
                k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "confluent_kafka": str(getattr(confluent_kafka, "__version__", "")),
                "librdkafka": confluent_kafka.libversion()[0],
                "git_commit": git_commit(),
            },
            "steps": {},
            "errors": {},
        }

    # -- topics -------------------------------------------------------------------------------

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topics(self, names: list[str], compact: bool = False) -> None:
        config = {"cleanup.policy": "compact"} if compact else {"retention.ms": "-1"}
        admin = self.admin()
        futures = admin.create_topics(
            [NewTopic(n, self.args.partitions, -1, config=config) for n in names],
            operation_timeout=30,
            request_timeout=30,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=60)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            self.topics.append(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = admin.list_topics(timeout=10)
            if all(n in meta.topics and meta.topics[n].partitions for n in names):
                return
            time.sleep(0.1)
        raise StepError(f"topics {names} did not appear in the metadata")

    def tmf_topics(self, app_id: str, input_topic: str) -> dict[str, str]:
        """Create a tmf-events app's topics (retention.ms=-1, changelog compacted)."""
        names = {
            "service_topic": f"{app_id}.service.events",
            "resource_topic": f"{app_id}.resource.events",
        }
        self.create_topics([*names.values(), f"{app_id}-dlq"])
        self.create_topics([f"{app_id}-state-changelog"], compact=True)
        return {"input_topic": input_topic, **names}

    def delete_topics(self) -> None:
        if not self.topics:
            return
        admin = self.admin()
        futures = admin.delete_topics(sorted(set(self.topics)), operation_timeout=30)
        for future in futures.values():
            with contextlib.suppress(Exception):
                future.result(timeout=60)

    # -- progress from a group's committed offsets ---------------------------------------------

    def committed(self, group: str, topic: str) -> int:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        try:
            tps = [TopicPartition(topic, p) for p in range(self.args.partitions)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
        finally:
            consumer.close()

    def committed_ticker(
        self, bar: Progress, task: Any, group: str, topic: str
    ) -> Callable[[], None]:
        last = [0.0]

        def tick() -> None:
            now = time.monotonic()
            if now - last[0] < 1.0:
                return
            last[0] = now
            with contextlib.suppress(KafkaException):
                bar.update(task, completed=self.committed(group, topic))

        return tick

    # -- steps ---------------------------------------------------------------------------------

    def step(
        self, name: str, fn: Callable[[], dict[str, Any] | None], skip_as: str | None = None
    ) -> None:
        """Run one step; its figures go to report["steps"][name], a failure to "errors"."""
        if (skip_as or name) in self.args.skip:
            return
        before = loadavg()
        started = time.monotonic()
        try:
            figures = fn()
        except (StepError, KafkaException, OSError) as exc:
            self.console.print(f"[red]{name}: {exc}")
            self.report["errors"][name] = str(exc)
            return
        except Exception as exc:  # a bug in one step must not lose the others' figures
            self.console.print_exception()
            self.report["errors"][name] = f"{type(exc).__name__}: {exc}"
            return
        if figures is not None:
            figures["loadavg_before"] = before
            figures["loadavg_after"] = loadavg()
            figures["step_seconds"] = round(time.monotonic() - started, 2)
            self.report["steps"][name] = figures

    def _producer_config(self) -> dict[str, Any]:
        settings = Settings(bootstrap_servers=self.bootstrap, instance_id="bench")
        return clients.plain_producer(settings, "bench-load")

    def load_input(self) -> dict[str, Any]:
        a = self.args
        self.create_topics([self.input_topic])
        gen = Generator(seed=a.seed, keys=a.keys, mix=Mix(), instance_bytes=a.instance_bytes)
        report = produce_load(
            self._producer_config(), self.input_topic, gen, a.records, None, console=self.console
        )
        if report.sent != a.records:
            raise StepError(f"only {report.sent} of {a.records} input records were acknowledged")
        return {
            "topic": self.input_topic,
            "records": report.sent,
            "bytes": report.bytes,
            "avg_record_bytes": report.bytes / max(1, report.sent),
            "seconds": report.seconds,
            "records_per_s": report.records_per_s,
        }

    def throughput(
        self, name: str, python: Path | str, mode: str, group: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        a = self.args
        timeout = max(180.0, a.records / 200)
        worker_args = {
            "bootstrap": self.bootstrap,
            "input_topic": self.input_topic,
            "group": group,
            "app_id": group,
            "expected": a.records,
            "timeout_s": timeout,
            "max_batch": a.max_batch,
            "commit_interval_ms": a.commit_interval_ms,
            "kafka": self.kafka,
            **extra,
        }
        worker = Worker(name, python, mode, worker_args, self.logs / f"{name}.log")
        with progress(self.console) as bar:
            task = bar.add_task(name, total=a.records, note="committed")
            tick = self.committed_ticker(bar, task, group, self.input_topic)
            try:
                result = worker.wait("result", timeout + 60, tick)
            finally:
                worker.stop()
            bar.update(task, completed=self.committed(group, self.input_topic))
        result.pop("event", None)
        result["group"] = group
        result["committed_offsets"] = self.committed(group, self.input_topic)
        if result["records_in"] < a.records or result["committed_offsets"] < a.records:
            raise StepError(
                f"{name} committed {result['records_in']} records "
                f"(offsets {result['committed_offsets']}) of {a.records} within {timeout:.0f} s"
            )
        return result

    def passthrough(self) -> dict[str, Any]:
        out = f"{self.run_id}.passthrough.out"
        self.create_topics([out])
        return self.throughput(
            "passthrough", sys.executable, "passthrough", f"{self.run_id}-passthrough",
            {"output_topic": out},
        )  # fmt: skip

    def tmf(self) -> dict[str, Any]:
        app_id = f"{self.run_id}-tmf"
        topics = self.tmf_topics(app_id, self.input_topic)
        result = self.throughput("tmf-events", sys.executable, "tmf", app_id, topics)
        metrics = result.pop("metrics", {})
        result["events_out"] = int(
            sum(v for k, v in metrics.items() if k.startswith("tmf_events_events_emitted_total"))
        )
        result["outcomes"] = outcome_counts(metrics)
        commits = metrics.get("tmf_events_commit_duration_seconds_count", 0)
        if commits:
            result["transactions"] = int(commits)
            result["avg_commit_s"] = metrics["tmf_events_commit_duration_seconds_sum"] / commits
            result["avg_batch_records"] = result["records_in"] / commits
        return result

    def quix(self) -> dict[str, Any]:
        python = quix_python(self.args, self.console)
        out = f"{self.run_id}.quix.out"
        self.create_topics([out])
        state_dir = self.logs / "quix-state"
        result = self.throughput(
            "quix", python, "quix", f"{self.run_id}-quix",
            {"output_topic": out, "state_dir": str(state_dir)},
        )  # fmt: skip
        shutil.rmtree(state_dir, ignore_errors=True)
        result["python"] = str(python)
        return result

    # -- latency --------------------------------------------------------------------------------

    def latency(self, share: float = 0.5) -> dict[str, Any]:
        """tmf-events at `share` of its measured maximum (or at --latency-rate)."""
        a = self.args
        tmf = self.report["steps"].get("tmf-events")
        if a.latency_rate:
            rate, basis = float(a.latency_rate) * share / 0.5, "--latency-rate"
        elif tmf:
            rate, basis = tmf["records_per_s"] * share, f"{share:.0%} of the measured maximum"
        else:
            raise StepError("no tmf-events rate measured; give --latency-rate")
        count = max(1, int(rate * a.latency_seconds))
        tag = f"latency-{round(share * 100)}"
        app_id = f"{self.run_id}-tmf-{tag}"
        input_topic = f"{self.run_id}.{tag}.input"
        self.create_topics([input_topic])
        topics = self.tmf_topics(app_id, input_topic)

        gen = Generator(seed=a.seed, keys=a.keys, mix=Mix(), instance_bytes=a.instance_bytes)
        with progress(self.console) as bar:
            task = bar.add_task("generating", total=count, note="")
            records: list[SyntheticRecord] = []
            for i, rec in enumerate(gen.records(count)):
                records.append(rec)
                if i % 2000 == 0:
                    bar.update(task, completed=i)
            bar.update(task, completed=count)

        worker = Worker(
            f"tmf-{tag}",
            sys.executable,
            "tmf",
            {
                "bootstrap": self.bootstrap,
                "app_id": app_id,
                "expected": None,
                "timeout_s": a.latency_seconds + 600,
                "max_batch": a.max_batch,
                "commit_interval_ms": a.commit_interval_ms,
                "kafka": self.kafka,
                **topics,
            },
            self.logs / f"tmf-{tag}.log",
        )
        reader = LatencyReader(
            self.bootstrap, [topics["service_topic"], topics["resource_topic"]], self.kafka
        )
        try:
            worker.wait("ready", 120)
            reader.start()
            reader.wait_assigned(60)
            sent, send_started, send_seconds = self.paced_send(input_topic, records, rate)
            # the events of the last records arrive within about a commit interval or two
            reader.wait_quiet(quiet_s=3.0, limit_s=60.0)
        finally:
            reader.stop()
            worker.signal(signal.SIGTERM)
        try:
            result = worker.wait("result", 60)
        finally:
            worker.stop()
        # the first seconds hold the start-up (first fetches, first transaction to each
        # output partition): steady state only, the timeline keeps everything
        warmup_s = min(3.0, a.latency_seconds / 4)
        warmup_ms = (send_started + warmup_s) * 1000
        samples = sorted(lat for sent_ms, lat in reader.samples if sent_ms >= warmup_ms)
        if not samples:
            raise StepError("the latency run saw no events")
        metrics = result.get("metrics", {})
        commits = metrics.get("tmf_events_commit_duration_seconds_count", 0)
        by_second: dict[int, list[float]] = {}
        for sent_ms, lat in reader.samples:
            by_second.setdefault(int(sent_ms / 1000 - send_started), []).append(lat)
        timeline = []
        for second in sorted(by_second):
            values = sorted(by_second[second])
            timeline.append(
                {
                    "second": second,
                    "events": len(values),
                    "p50_ms": percentile(values, 50),
                    "p99_ms": percentile(values, 99),
                }
            )
        return {
            "share_of_max": share,
            "rate_target": rate,
            "rate_achieved": sent / send_seconds if send_seconds > 0 else 0.0,
            "records_sent": sent,
            "events_seen": len(reader.samples),
            "events_measured": len(samples),
            "warmup_s": warmup_s,
            "rate_basis": basis,
            "p50_ms": percentile(samples, 50),
            "p90_ms": percentile(samples, 90),
            "p99_ms": percentile(samples, 99),
            "max_ms": samples[-1],
            "mean_ms": sum(samples) / len(samples),
            "processor_histogram": {k: v for k, v in metrics.items() if "end_to_end_latency" in k},
            "processor_committed_records": result.get("records_in"),
            "transactions": int(commits),
            "avg_commit_s": (
                metrics["tmf_events_commit_duration_seconds_sum"] / commits if commits else None
            ),
            "avg_batch_records": (result.get("records_in") or 0) / commits if commits else None,
            "timeline": timeline,
        }

    def paced_send(
        self, topic: str, records: list[SyntheticRecord], rate: float
    ) -> tuple[int, float, float]:
        """Produce `records` at `rate`/s with `observedAt` and the record timestamp set to the
        send time; return (acknowledged, send start on the wall clock, seconds)."""
        producer = Producer(self._producer_config())
        acked = [0]

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                acked[0] += 1

        bucket = TokenBucket(rate)
        started_wall = time.time()
        started = time.monotonic()
        with progress(self.console) as bar:
            task = bar.add_task(f"latency @ {rate:,.0f}/s", total=len(records), note="sent")
            for i, rec in enumerate(records):
                delay = bucket.wait_time()
                while delay > 0:
                    producer.poll(delay)
                    delay = bucket.wait_time()
                bucket.take()
                now_ms = int(time.time() * 1000)
                while True:
                    try:
                        producer.produce(
                            topic,
                            value=with_observed_at(rec.value, now_ms),
                            key=rec.key,
                            timestamp=now_ms,
                            on_delivery=on_delivery,
                        )
                        break
                    except BufferError:
                        producer.poll(0.01)
                if i % 500 == 0:
                    producer.poll(0)
                    bar.update(task, completed=i)
            producer.flush(60)
            bar.update(task, completed=len(records))
        return acked[0], started_wall, time.monotonic() - started

    # -- restart and memory -----------------------------------------------------------------------

    def restart(self) -> dict[str, Any]:
        a = self.args
        app_id = f"{self.run_id}-tmf-restart"
        input_topic = f"{self.run_id}.restart.input"
        self.create_topics([input_topic])
        topics = self.tmf_topics(app_id, input_topic)
        changelog = f"{app_id}-state-changelog"
        fill = self.prefill(changelog, a.restart_keys)
        # The processor's own group timing here (not the peers' short session): noida answers
        # nothing else while it builds a 2 GB fetch response, and a 6 s session would expire
        # in the middle of the restore. Tansu still needs the short one for its first join.
        kafka = dict(self.kafka)
        if self.report["broker"]["kind"] != "tansu":
            for name in GROUP_KAFKA:
                if name not in a.kafka:
                    kafka.pop(name, None)
        state_dir = self.logs / "restart-state"
        worker_args = {
            "bootstrap": self.bootstrap,
            "app_id": app_id,
            "partitions": a.partitions,
            "timeout_s": max(120.0, a.restart_keys / 5000),
            "max_batch": a.max_batch,
            "commit_interval_ms": a.commit_interval_ms,
            "kafka": kafka,
            "state_dir": str(state_dir),
            **topics,
        }
        # Cold: no snapshot yet, the whole changelog is read; stopping writes the snapshots.
        # Warm: the restart an operator sees with state_dir on a volume.
        result = self.restart_worker("restart-cold", worker_args, "from the changelog")
        warm = self.restart_worker("restart-warm", worker_args, "from the snapshots")
        snapshots = sorted(state_dir.rglob("*.snapshot"))
        result["cold_seconds_to_ready"] = result["seconds_to_ready"]
        result["seconds_to_ready"] = warm["seconds_to_ready"]
        result["warm"] = {
            k: warm[k]
            for k in ("seconds_to_ready", "seconds_from_process_start", "restored_records", "keys")
        }
        result["warm"]["mb_per_1m_keys"] = warm["mb_per_1m_keys"]
        result["snapshot_bytes"] = sum(p.stat().st_size for p in snapshots)
        result["kafka"] = kafka
        result["prefill"] = fill
        shutil.rmtree(state_dir, ignore_errors=True)
        return result

    def restart_worker(self, name: str, worker_args: dict[str, Any], how: str) -> dict[str, Any]:
        a = self.args
        worker = Worker(name, sys.executable, "restart", worker_args, self.logs / f"{name}.log")
        with self.console.status(f"{name}: restoring {a.restart_keys:,} keys {how} ..."):
            try:
                result = worker.wait("result", worker_args["timeout_s"] + 120)
            finally:
                worker.stop()
        result.pop("event", None)
        metrics = result.pop("metrics", {})
        result["restored_records"] = int(metrics.get("tmf_events_restored_records_total", 0))
        result["partitions_lost"] = int(metrics.get("tmf_events_rebalances_total{kind=lost}", 0))
        # noida answers a restore fetch with the whole changelog in one response; when
        # building it takes longer than socket.timeout.ms (60 s) the client retries it
        result["request_timeouts"] = worker.log.read_text(errors="replace").count("REQTMOUT")
        if not result["ready"]:
            raise StepError(f"{name}: the processor was not ready; {worker.tail()}")
        if result["keys"] != a.restart_keys:
            raise StepError(f"{name}: restored {result['keys']} keys, expected {a.restart_keys}")
        result["seconds_from_process_start"] = result["ready_at"] - worker.spawned
        keys = result["keys"]
        mb = 1024 * 1024
        result["mb_per_1m_keys"] = (result["rss_touched"] - result["rss_before"]) / mb * 1e6 / keys
        result["mb_per_1m_keys_encoded"] = (
            (result["rss_restored"] - result["rss_before"]) / mb * 1e6 / keys
        )
        result["mb_per_1m_keys_store"] = (
            (result["rss_touched"] - result["rss_dropped"]) / mb * 1e6 / keys
        )
        return result

    def prefill(self, topic: str, keys: int) -> dict[str, Any]:
        """Write `keys` encoded state records straight into the changelog, batch-produced.

        The states are real: the Core's output for a seeded synthetic history over 1,000
        keys, cloned with a new key and event id per record (sizes stay those of real ones).
        """
        a = self.args
        templates = sample_states(a.seed, a.instance_bytes)
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "compression.type": a.changelog_compression,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            }
        )
        failed = [0]

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                failed[0] += 1

        total_bytes = 0
        started = time.monotonic()
        with progress(self.console) as bar:
            task = bar.add_task("changelog prefill", total=keys, note="state records")
            for i, (key, value) in enumerate(cloned_states(templates, keys, a.seed)):
                while True:
                    try:
                        producer.produce(topic, value, key, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
                total_bytes += len(key) + len(value)
                if i % 5000 == 0:
                    producer.poll(0)
                    bar.update(task, completed=i)
            remaining = producer.flush(300)
            bar.update(task, completed=keys)
        if remaining or failed[0]:
            raise StepError(f"changelog prefill: {remaining + failed[0]} records not delivered")
        return {
            "records": keys,
            "bytes": total_bytes,
            "avg_record_bytes": total_bytes / max(1, keys),
            "seconds": time.monotonic() - started,
        }

    # -- profile ---------------------------------------------------------------------------------

    def profile(self) -> dict[str, Any]:
        spy = (
            self.args.py_spy
            or shutil.which("py-spy")
            or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        )
        if not spy:
            raise StepError("py-spy not found: pip install py-spy (or give --py-spy)")
        svg = RESULTS / "profile.svg"
        raw = RESULTS / "profile.txt"
        out: dict[str, Any] = {"svg": str(svg.relative_to(REPO)), "raw": str(raw.relative_to(REPO))}
        for fmt, path in (("flamegraph", svg), ("raw", raw)):
            app_id = f"{self.run_id}-tmf-profile-{fmt}"
            topics = self.tmf_topics(app_id, self.input_topic)
            worker = Worker(
                f"profile-{fmt}",
                sys.executable,
                "tmf",
                {
                    "bootstrap": self.bootstrap,
                    "app_id": app_id,
                    "expected": self.args.records,
                    "timeout_s": max(300.0, self.args.records / 100),
                    "max_batch": self.args.max_batch,
                    "commit_interval_ms": self.args.commit_interval_ms,
                    "kafka": self.kafka,
                    "announce_first": True,
                    **topics,
                },
                self.logs / f"profile-{fmt}.log",
            )
            spy_log = (self.logs / f"py-spy-{fmt}.log").open("wb")
            # --idle: waits (flush, commit round trips, consume) are part of the time.
            # --threads: the main loop's stacks can be told from the helper threads'.
            # The flame graph groups by function, the raw stacks keep line numbers.
            command = [spy, "record", "--pid", str(worker.pid), "--rate", "200", "--idle",
                       "--threads", "--format", fmt, "--output", str(path)]  # fmt: skip
            if fmt == "flamegraph":
                command.append("--function")
            try:
                with progress(self.console) as bar:
                    task = bar.add_task(
                        f"profile ({fmt})", total=self.args.records, note="committed"
                    )
                    tick = self.committed_ticker(bar, task, app_id, self.input_topic)
                    # sample the hot path only: attach once the first record is consumed
                    worker.wait("first", 120, tick)
                    spy_proc = subprocess.Popen(command, stdout=spy_log, stderr=subprocess.STDOUT)
                    result = worker.wait("result", max(300.0, self.args.records / 100) + 60, tick)
                    bar.update(task, completed=result["records_in"])
                try:
                    spy_proc.wait(60)
                except subprocess.TimeoutExpired:
                    spy_proc.send_signal(signal.SIGINT)
                    spy_proc.wait(30)
                if spy_proc.returncode != 0 or not path.exists():
                    raise StepError(f"py-spy failed (ptrace not allowed?); see {spy_log.name}")
            finally:
                worker.stop()
                spy_log.close()
            out[f"records_per_s_{fmt}"] = result["records_per_s"]
        if raw.exists():
            out.update(summarize_profile(raw.read_text()))
        return out

    # -- the whole run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        self.report["machine"]["loadavg_before"] = loadavg()
        self.console.print(
            f"[bold]tmf-events benchmark[/] {self.run_id}: {a.records:,} records, {a.keys:,} keys,"
            f" {a.partitions} partitions, ~{a.instance_bytes} B instances; "
            f"restart with {a.restart_keys:,} keys"
        )
        self.console.print(
            f"[yellow]load average before: {' '.join(map(str, loadavg()))} "
            f"on {os.cpu_count()} cores[/] (other work on this machine slows every figure)"
        )
        broker: EmbeddedBroker | None = None
        try:
            if a.bootstrap_servers:
                self.bootstrap = a.bootstrap_servers
                self.report["broker"] = {"kind": "external", "bootstrap": self.bootstrap}
            else:
                broker = EmbeddedBroker(a.broker)
                with self.console.status(f"starting the embedded {a.broker} broker ..."):
                    self.bootstrap = broker.start()
                self.report["broker"] = {"kind": a.broker, "bootstrap": self.bootstrap}
                if a.broker == "noida":
                    self.kafka.setdefault("receive.message.max.bytes", NOIDA_RECEIVE_MAX)
                    self.console.print(
                        f"[yellow]noida-db ignores fetch.max.bytes: every peer's clients get "
                        f"receive.message.max.bytes={self.kafka['receive.message.max.bytes']}[/]"
                    )
            self.report["kafka"] = dict(self.kafka)
            self.step("input", self.load_input)
            if "input" not in self.report["steps"]:
                return self.report
            self.step("passthrough", self.passthrough)
            self.step("tmf-events", self.tmf, skip_as="tmf")
            self.step("quix", self.quix)
            self.step("latency", self.latency)
            if a.latency_low:
                self.step("latency-low", lambda: self.latency(a.latency_low), skip_as="latency")
            self.step("profile", self.profile)
            self.step("restart", self.restart)
        finally:
            if not a.keep_topics and self.bootstrap and a.bootstrap_servers:
                with contextlib.suppress(Exception):
                    self.delete_topics()
            if broker is not None:
                with self.console.status("stopping the broker ..."):
                    broker.stop()
        self.report["machine"]["loadavg_after"] = loadavg()
        self.report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        evaluate(self.report)
        return self.report


# -- latency reader ---------------------------------------------------------------------------


class LatencyReader:
    """A read_committed consumer of the event topics: per event (its ce_time in ms, arrival
    minus ce_time in ms). ce_time is the input's observedAt, which the sender set to the
    send time."""

    def __init__(self, bootstrap: str, topics: list[str], kafka: dict[str, Any]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"latency-reader-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,  # do not add the reader's own fetch wait
                **kafka,
            }
        )
        self.topics = topics
        self.samples: list[tuple[float, float]] = []
        self.last_seen = time.monotonic()
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="latency-reader")

    def start(self) -> None:
        self.consumer.subscribe(self.topics, on_assign=lambda _c, _p: self.assigned.set())
        self._thread.start()

    def wait_assigned(self, timeout: float) -> None:
        if not self.assigned.wait(timeout):
            raise StepError("the latency reader got no partitions")
        time.sleep(0.5)  # let it fetch its start offsets

    def _run(self) -> None:
        samples = self.samples
        while not self._stop.is_set():
            msgs = self.consumer.consume(1000, 0.05)
            now_ms = time.time() * 1000
            for msg in msgs:
                if msg.error() is not None:
                    continue
                headers: list[tuple[str, bytes | None]] = msg.headers() or []  # type: ignore[assignment]
                for name, value in headers:
                    if name == "ce_time" and value is not None:
                        sent_ms = parse_ms(value.decode())
                        samples.append((sent_ms, now_ms - sent_ms))
                        break
            if msgs:
                self.last_seen = time.monotonic()

    def wait_quiet(self, quiet_s: float, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and time.monotonic() - self.last_seen < quiet_s:
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.consumer.close()


def parse_ms(text: str) -> float:
    return datetime.fromisoformat(text).timestamp() * 1000


def with_observed_at(value: bytes | None, now_ms: int) -> bytes | None:
    """The change record with its envelope's observedAt set to `now_ms` (a tombstone has
    none: its time is the record timestamp)."""
    if value is None:
        return None
    marker = b'"observedAt":"'
    i = value.find(marker)
    if i < 0:
        return value
    start = i + len(marker)
    end = value.index(b'"', start)
    return value[:start] + rfc3339_ms(now_ms).encode() + value[end:]


# -- changelog contents -----------------------------------------------------------------------


def sample_states(seed: int, instance_bytes: int, keys: int = 1000) -> list[State]:
    """The states the Core leaves after a seeded synthetic history of 3 records per key."""
    settings = Settings(private_fields=["note"], instance_id="bench")
    task = new_task(settings)
    gen = Generator(seed=seed, keys=keys, mix=Mix(), instance_bytes=instance_bytes)
    for offset, rec in enumerate(gen.records(keys * 3)):
        record = InputRecord("inventory.changes", 0, offset, rec.timestamp_ms, rec.key, rec.value)
        task.process(record)
    # The changelog values (with their last event), as the processor would write them.
    states = [decode_state(encoded) for _, _, encoded in task.changelog()]
    if not states:
        raise StepError("the synthetic history left no state")
    return states


def cloned_states(templates: list[State], count: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """`count` (key, encode_state(state)) pairs: template i % len(templates) with a fresh
    random UUID key and a fresh event id put everywhere the template's own appear."""
    rng = Random(seed)
    for i in range(count):
        t = templates[i % len(templates)]
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        old_key = t.href.rsplit("/", 1)[-1] if t.href else ""
        event_id = t.last_event_id[:-12] + f"{i:012x}" if t.last_event_id else None
        events = tuple(
            StoredEvent(
                event_id or e.id,
                e.type,
                e.time,
                e.topic,
                e.cloudevent.replace(old_key, key).replace(e.id, event_id or e.id),
            )
            for e in t.events
        )
        state = dataclasses.replace(
            t,
            href=t.href.replace(old_key, key) if t.href else None,
            last_event_id=event_id,
            offset=i,
            events=events,
        )
        yield key.encode(), encode_state(state)


# -- profile summary --------------------------------------------------------------------------


def summarize_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """Top frames of the processor's main loop from py-spy's raw (collapsed) output.

    Only the thread whose stacks go through `Processor._loop` counts. Per function (line
    numbers dropped): `inclusive` = share of its samples with the function on the stack,
    `self` = share with it on top; `self_lines` = the same per source line. With `--idle`
    a C call that waits (consume, flush, commit) is the self time of the Python line that
    made it.
    """
    stacks: list[tuple[list[str], int]] = []
    for line in raw.splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        frames = [f for f in head.split(";") if not f.startswith(("thread (", "process "))]
        if frames and any(f.startswith("Processor._loop (") for f in frames):
            stacks.append((frames, int(count)))
    total = sum(n for _, n in stacks)
    if not total:
        return {"samples": 0}
    inclusive: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    self_line: Counter[str] = Counter()
    for frames, n in stacks:
        for fn in {_function(f) for f in frames if "worker.py" not in f}:
            inclusive[fn] += n
        self_fn[_function(frames[-1])] += n
        self_line[frames[-1]] += n

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "share": n / total} for f, n in c.most_common(top)]

    return {
        "samples": total,
        "inclusive": share(inclusive),
        "self": share(self_fn),
        "self_lines": share(self_line),
    }


def _function(frame: str) -> str:
    """`name (path:line)` → `name (path)`."""
    return re.sub(r":\d+\)$", ")", frame)


# -- evaluation and the table -----------------------------------------------------------------


def outcome_counts(metrics: dict[str, float]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for k, v in metrics.items():
        if k.startswith("tmf_events_records_skipped_total{"):
            out[k.split("reason=", 1)[1].rstrip("}")] += int(v)
        elif k.startswith("tmf_events_dead_letters_total{"):
            out["dead_letter"] += int(v)
    return dict(out)


def evaluate(report: dict[str, Any]) -> None:
    steps = report["steps"]
    tmf = steps.get("tmf-events", {}).get("records_per_s")
    passthrough = steps.get("passthrough", {}).get("records_per_s")
    quix = steps.get("quix", {}).get("records_per_s")
    restart = steps.get("restart", {})
    values = {
        "tmf_vs_quix": tmf / quix if tmf and quix else None,
        "tmf_vs_passthrough": tmf / passthrough if tmf and passthrough else None,
        "restart_ready_s": restart.get("seconds_to_ready"),
        "memory_mb_per_1m": restart.get("mb_per_1m_keys"),
    }
    report["ratios"] = {k: values[k] for k in ("tmf_vs_quix", "tmf_vs_passthrough")}
    keys = restart.get("keys") or report["options"]["restart_keys"]
    targets = []
    for name, (text, op, bound) in TARGETS.items():
        value = values[name]
        if value is None:
            verdict = "n/a"
        else:
            ok = value >= bound if op == ">=" else value <= bound
            verdict = "PASS" if ok else "MISS"
        targets.append(
            {
                "name": name,
                "description": text.format(keys=f"{keys:,}"),
                "target": f"{op} {bound:g}",
                "value": value,
                "verdict": verdict,
            }
        )
    report["targets"] = targets


def print_report(report: dict[str, Any], console: Console) -> None:
    steps = report["steps"]
    inp = steps.get("input", {})
    table = Table(
        title=(
            f"throughput: {inp.get('records', 0):,} records "
            f"({inp.get('avg_record_bytes', 0):,.0f} B avg), broker {report['broker']['kind']}"
        )
    )
    for col in ("peer", "records", "events out", "seconds", "records/s", "tmf-events / peer"):
        table.add_column(col, justify="right")
    tmf_rate = steps.get("tmf-events", {}).get("records_per_s")
    for name in ("passthrough", "tmf-events", "quix"):
        s = steps.get(name)
        if s is None:
            table.add_row(name, "-", "-", "-", report["errors"].get(name, "skipped")[:40], "-")
            continue
        out = s.get("events_out", s.get("records_out"))
        ratio = f"{tmf_rate / s['records_per_s']:.2f}" if tmf_rate and s["records_per_s"] else "-"
        table.add_row(
            name,
            f"{s['records_in']:,}",
            f"{out:,}" if out is not None else "-",
            f"{s['seconds']:.2f}",
            fmt_rate(s["records_per_s"]),
            ratio if name != "tmf-events" else "1.00",
        )
    console.print(table)

    for lat in (steps.get("latency"), steps.get("latency-low")):
        if not lat:
            continue
        console.print(
            f"latency at {lat['rate_achieved']:,.0f} records/s (target "
            f"{lat['rate_target']:,.0f}: {lat['rate_basis']}), {lat['events_measured']:,} events "
            f"after {lat['warmup_s']:g} s of warm-up: p50 {lat['p50_ms']:.0f} ms, "
            f"p90 {lat['p90_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms"
        )
        tl = lat.get("timeline") or []
        if len(tl) >= 4:
            head, tail = tl[1 : 1 + len(tl) // 3], tl[-(len(tl) // 3) :]
            rising = max(t["p50_ms"] for t in tail) > 2 * max(t["p50_ms"] for t in head)
            console.print(
                "  p50 per second of sending: "
                + " ".join(f"{t['p50_ms']:.0f}" for t in tl)
                + " ms"
                + ("  [red](rising: the processor fell behind)[/]" if rising else "")
            )
    rs = steps.get("restart")
    if rs:
        pf = rs["prefill"]
        warm = rs.get("warm", {})
        console.print(
            f"restart: {rs['keys']:,} keys ({pf['avg_record_bytes']:,.0f} B per state record, "
            f"{pf['bytes'] / 1e6:,.0f} MB of changelog): from the changelog ready "
            f"{rs.get('cold_seconds_to_ready', rs['seconds_to_ready']):.2f} s after run(); "
            f"from the snapshots ({rs.get('snapshot_bytes', 0) / 1e6:,.0f} MB) ready "
            f"{warm.get('seconds_to_ready', float('nan')):.2f} s after run() "
            f"({warm.get('seconds_from_process_start', float('nan')):.2f} s from process start, "
            f"{warm.get('restored_records', 0):,} changelog records read)"
            + (
                f"; [yellow]{rs['request_timeouts']} restore fetch(es) timed out, retried[/]"
                if rs.get("request_timeouts")
                else ""
            )
        )
        console.print(
            f"memory: RSS +{rs['mb_per_1m_keys']:,.0f} MB per 1M keys restored and read with "
            f"store.get (+{rs['mb_per_1m_keys_encoded']:,.0f} MB before reading them); releasing "
            f"the store gave back {rs['mb_per_1m_keys_store']:,.0f} MB per 1M keys"
        )
    prof = steps.get("profile")
    if prof and prof.get("samples"):
        console.print(f"profile: {prof['svg']} ({prof['samples']:,} samples of the main loop)")
        for row in prof["inclusive"][:8]:
            console.print(f"  {row['share']:6.1%}  {row['frame']}")

    targets = Table(title="targets")
    for col in ("target", "bound", "measured", "result"):
        targets.add_column(col, justify="right" if col != "target" else "left")
    for t in report["targets"]:
        v = t["value"]
        colour = {"PASS": "green", "MISS": "red"}.get(t["verdict"], "yellow")
        targets.add_row(
            t["description"],
            t["target"],
            "n/a" if v is None else f"{v:,.2f}",
            f"[{colour}]{t['verdict']}[/]",
        )
    console.print(targets)
    m = report["machine"]
    console.print(
        f"[yellow]load average before {' '.join(map(str, m['loadavg_before']))}, after "
        f"{' '.join(map(str, m.get('loadavg_after', [])))} on {m['cpus']} cores[/]: "
        "a shared machine; compare figures of one run with each other, not across runs."
    )
    for name, err in report["errors"].items():
        console.print(f"[red]{name} failed:[/] {err}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, console)
    try:
        report = bench.run()
    except KeyboardInterrupt:
        console.print("[red]interrupted")
        return 130
    print_report(report, console)
    text = json.dumps(report, indent=2, default=str) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    (RESULTS / f"{report['run_id']}.json").write_text(text)
    console.print(f"wrote {args.output}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
