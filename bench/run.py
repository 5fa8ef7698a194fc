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
import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from rich.console import Console
from rich.progress import Progress

from bench.common import (
    GROUP_KAFKA,
    NOIDA_RECEIVE_MAX,
    RESULTS,
    StepError,
    git_commit,
    loadavg,
    progress,
)
from bench.costs import costs
from bench.latency import hops, latency
from bench.profile import profile
from bench.report import evaluate, outcome_counts, print_report
from bench.restart import restart
from bench.workers import QUIX_VENV, Worker, quix_python
from processor import clients
from processor.config import Settings
from processor.dev.broker import EmbeddedBroker
from processor.dev.load import produce_load
from processor.dev.synthetic import Generator, Mix

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
        default="lz4",
        help="compression.type of the changelog prefill (default lz4, as the processor writes)",
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
        help="steps to leave out (comma-separated): passthrough,floor,tmf,costs,quix,latency,"
        "profile,restart",
    )
    p.add_argument(
        "--quix-python",
        type=Path,
        help=f"interpreter with quixstreams installed (default: {QUIX_VENV.name}, made on use)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="also run the tmf-events of another checkout (its .venv) side by side",
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
    unknown = args.skip - {
        "passthrough",
        "floor",
        "tmf",
        "costs",
        "quix",
        "latency",
        "profile",
        "restart",
    }
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


# -- the benchmark ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = f"bench-{stamp}-{uuid.uuid4().hex[:6]}"
        self.logs = RESULTS / "logs" / self.run_id
        self.bootstrap = ""
        self.broker_pid: int | None = None  # an embedded broker's, for CPU per record
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

    def producer_config(self) -> dict[str, Any]:
        settings = Settings(bootstrap_servers=self.bootstrap, instance_id="bench")
        return clients.plain_producer(settings, "bench-load")

    def load_input(self) -> dict[str, Any]:
        a = self.args
        self.create_topics([self.input_topic])
        gen = Generator(seed=a.seed, keys=a.keys, mix=Mix(), instance_bytes=a.instance_bytes)
        report = produce_load(
            self.producer_config(), self.input_topic, gen, a.records, None, console=self.console
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
        self,
        name: str,
        python: Path | str,
        mode: str,
        group: str,
        extra: dict[str, Any],
        repo: Path | None = None,
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
            "broker_pid": self.broker_pid,
            **extra,
        }
        log = self.logs / f"{name}.log"
        worker = Worker(name, python, mode, worker_args, log, *([repo] if repo else []))
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

    def floor(self) -> dict[str, Any]:
        app_id = f"{self.run_id}-floor"
        topics = self.tmf_topics(app_id, self.input_topic)
        return self.throughput("floor", sys.executable, "floor", app_id, topics)

    def tmf(self, checkout: Path | None = None, label: str = "") -> dict[str, Any]:
        """One measured run of tmf-events; `label` names a run beside others (costs' rounds)."""
        name = "tmf-events" if checkout is None else "tmf-events (compared)"
        app_id = f"{self.run_id}-tmf" if checkout is None else f"{self.run_id}-tmf-compared"
        if label:
            name, app_id = f"{name} {label}", f"{app_id}-{label.strip('()').replace('/', 'of')}"
        topics = self.tmf_topics(app_id, self.input_topic)
        python = sys.executable if checkout is None else checkout / ".venv" / "bin" / "python"
        result = self.throughput(name, python, "tmf", app_id, topics, checkout)
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
                self.broker_pid = broker.pid
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
            self.step("floor", self.floor)
            self.step("tmf-events", self.tmf, skip_as="tmf")
            self.step("costs", lambda: costs(self))
            if a.compare:
                self.step("tmf-events (compared)", lambda: self.tmf(a.compare.resolve()))
            self.step("quix", self.quix)
            self.step("latency", lambda: latency(self))
            self.step("broker-hop", lambda: hops(self), skip_as="latency")
            if a.latency_low:
                self.step("latency-low", lambda: latency(self, a.latency_low), skip_as="latency")
            self.step("profile", lambda: profile(self))
            self.step("restart", lambda: restart(self))
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
