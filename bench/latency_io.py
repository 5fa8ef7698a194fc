"""The two ends of the latency run, each run by `bench/worker.py` in a process of its own:
a paced sender of change records and a read_committed reader of the events.

Latency is measured from the send time — `observedAt` and the record timestamp are set to
the wall clock when the record is handed to the producer, so it includes the producer's
linger — to the moment the reader has the committed event (the event's `ce_time` is the
record's `observedAt`). Sender, reader and processor share one clock: the machine's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from processor.dev.load import TokenBucket
from processor.dev.synthetic import Generator, Mix, rfc3339_ms


def send_paced(args: dict[str, Any], producer_config: dict[str, Any]) -> dict[str, Any]:
    """Generate the records first, then produce them at `rate` per second."""
    gen = Generator(
        seed=args["seed"], keys=args["keys"], mix=Mix(), instance_bytes=args["instance_bytes"]
    )
    records = list(gen.records(args["count"]))
    producer = Producer(producer_config)
    acked = [0]

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is None:
            acked[0] += 1

    bucket = TokenBucket(args["rate"])
    started_wall, started = time.time(), time.monotonic()
    for i, rec in enumerate(records):
        delay = bucket.wait_time()
        while delay > 0:
            producer.poll(delay)  # sleep while serving delivery callbacks
            delay = bucket.wait_time()
        bucket.take()
        now_ms = int(time.time() * 1000)
        value = with_observed_at(rec.value, now_ms)
        while True:
            try:
                producer.produce(
                    args["topic"], value, rec.key, timestamp=now_ms, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.01)
        if i % 500 == 0:
            producer.poll(0)
    producer.flush(60)
    return {"sent": acked[0], "started_wall": started_wall, "seconds": time.monotonic() - started}


def read_events(
    bootstrap: str,
    topics: list[str],
    kafka: dict[str, Any],
    samples: Path,
    stop: threading.Event,
    emit: Callable[..., None],
    quiet_s: float = 3.0,
) -> dict[str, Any]:
    """Record (ce_time, arrival - ce_time) in ms per committed event until `stop`; says
    "ready" once assigned and "quiet" once no event came for `quiet_s` after the first."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,  # the reader's own fetch wait is not the processor's
            **kafka,
        }
    )
    assigned = threading.Event()

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        c.assign(partitions)
        assigned.set()

    consumer.subscribe(topics, on_assign=on_assign)
    seen: list[tuple[float, float]] = []
    announced = quiet = False
    last = time.monotonic()
    while not stop.is_set():
        msgs = consumer.consume(1000, 0.05)
        now_ms = time.time() * 1000
        for msg in msgs:
            if msg.error() is not None:
                continue
            headers: list[tuple[str, bytes]] = msg.headers() or []  # type: ignore[assignment]
            for name, value in headers:
                if name == "ce_time" and value is not None:
                    sent_ms = parse_ms(value.decode())
                    seen.append((sent_ms, now_ms - sent_ms))
                    break
        if msgs:
            last, quiet = time.monotonic(), False
        if assigned.is_set() and not announced:
            announced = True
            emit("ready")
        if seen and not quiet and time.monotonic() - last > quiet_s:
            quiet = True
            emit("quiet", events=len(seen))
    consumer.close()
    samples.write_text("".join(f"{s:.0f} {lat:.1f}\n" for s, lat in seen))
    return {"events": len(seen), "samples": str(samples)}


def broker_hop(
    bootstrap: str, topic: str, kafka: dict[str, Any], fetch_wait_ms: int, count: int = 100
) -> dict[str, float]:
    """The broker's own delivery time: one record every 20 ms, produced with no linger, and
    the time until an idle consumer with this `fetch.wait.max.ms` has it (p50, p99 in ms)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"hop-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": fetch_wait_ms,
            **kafka,
        }
    )
    consumer.assign([TopicPartition(topic, 0, -1)])  # from the end
    consumer.consume(10, 1.0)  # joined the fetch loop before the first record
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    lats: list[float] = []
    for _ in range(count):
        producer.produce(topic, str(time.time()).encode(), partition=0)
        producer.poll(0)
        deadline = time.monotonic() + 0.02
        while time.monotonic() < deadline:
            for msg in consumer.consume(10, max(0.0, deadline - time.monotonic())):
                if msg.error() is None and msg.value():
                    lats.append((time.time() - float(msg.value() or b"0")) * 1000)
    end = time.monotonic() + 2
    while len(lats) < count and time.monotonic() < end:
        for msg in consumer.consume(100, 0.1):
            if msg.error() is None and msg.value():
                lats.append((time.time() - float(msg.value() or b"0")) * 1000)
    producer.flush(10)
    consumer.close()
    lats.sort()
    return {
        "p50_ms": lats[len(lats) // 2] if lats else float("nan"),
        "p99_ms": lats[min(len(lats) - 1, int(len(lats) * 0.99))] if lats else float("nan"),
    }


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
