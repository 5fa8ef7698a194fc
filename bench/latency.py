"""The latency step: tmf-events at a share of its maximum rate, a paced sender and a
read_committed reader, each apart from the processor."""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, Producer

from bench.common import StepError, percentile, progress
from bench.workers import Worker
from processor.dev.load import TokenBucket
from processor.dev.synthetic import Generator, Mix, SyntheticRecord, rfc3339_ms

if TYPE_CHECKING:
    from bench.run import Bench


def latency(bench: Bench, share: float = 0.5) -> dict[str, Any]:
    """tmf-events at `share` of its measured maximum (or at --latency-rate)."""
    a = bench.args
    tmf = bench.report["steps"].get("tmf-events")
    if a.latency_rate:
        rate, basis = float(a.latency_rate) * share / 0.5, "--latency-rate"
    elif tmf:
        rate, basis = tmf["records_per_s"] * share, f"{share:.0%} of the measured maximum"
    else:
        raise StepError("no tmf-events rate measured; give --latency-rate")
    count = max(1, int(rate * a.latency_seconds))
    tag = f"latency-{round(share * 100)}"
    app_id = f"{bench.run_id}-tmf-{tag}"
    input_topic = f"{bench.run_id}.{tag}.input"
    bench.create_topics([input_topic])
    topics = bench.tmf_topics(app_id, input_topic)

    gen = Generator(seed=a.seed, keys=a.keys, mix=Mix(), instance_bytes=a.instance_bytes)
    with progress(bench.console) as bar:
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
            "bootstrap": bench.bootstrap,
            "app_id": app_id,
            "expected": None,
            "timeout_s": a.latency_seconds + 600,
            "max_batch": a.max_batch,
            "commit_interval_ms": a.commit_interval_ms,
            "kafka": bench.kafka,
            **topics,
        },
        bench.logs / f"tmf-{tag}.log",
    )
    reader = LatencyReader(
        bench.bootstrap, [topics["service_topic"], topics["resource_topic"]], bench.kafka
    )
    try:
        worker.wait("ready", 120)
        reader.start()
        reader.wait_assigned(60)
        sent, send_started, send_seconds = paced_send(bench, input_topic, records, rate)
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
    bench: Bench, topic: str, records: list[SyntheticRecord], rate: float
) -> tuple[int, float, float]:
    """Produce `records` at `rate`/s with `observedAt` and the record timestamp set to the
    send time; return (acknowledged, send start on the wall clock, seconds)."""
    producer = Producer(bench.producer_config())
    acked = [0]

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is None:
            acked[0] += 1

    bucket = TokenBucket(rate)
    started_wall = time.time()
    started = time.monotonic()
    with progress(bench.console) as bar:
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
