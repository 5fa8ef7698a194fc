"""`tmf-events load`: produce synthetic change records into Kafka at a given rate.

This is the edge: it reads the wall clock (token bucket, progress, elapsed time) and talks to
Kafka. The records themselves come from the pure `processor.dev.synthetic.Generator`.

The producer is keyed by instance id with `partitioner=murmur2_random` (the partitioning of Java
producers, so the upstream layout of docs/design.md#input-change-records is reproduced), idempotent,
with a short linger. Each record's Kafka timestamp is its `timestamp_ms` (the generator's clock).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from processor.dev.synthetic import Generator
from processor.errors import UNREACHABLE_CODES

__all__ = ["LoadReport", "TokenBucket", "produce_load"]

_POLL_EVERY = 1000  # serve delivery callbacks and refresh the progress bar every N records
_FLUSH_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadReport:
    """Outcome of one load run. `sent` counts records the broker acknowledged."""

    sent: int
    failed: int
    seconds: float
    bytes: int = 0
    interrupted: bool = False
    first_error: str | None = None
    unreachable: bool = False  # stopped early: deliveries failed for want of a broker

    @property
    def records_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class TokenBucket:
    """Rate limiter on a monotonic clock: `rate` tokens per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # default burst: 50 ms worth of records, at least one
        self.burst = max(1.0, burst if burst is not None else rate * 0.05)
        self._tokens = self.burst
        self._last = time.monotonic()

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until `tokens` are available (0 = take them now); refills first."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= tokens:
            return 0.0
        return (tokens - self._tokens) / self.rate

    def take(self, tokens: float = 1.0) -> None:
        self._tokens -= tokens


class _RateColumn(ProgressColumn):
    """Records per second, as the progress bar's moving average sees it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed or 0:,.0f} rec/s", style="progress.data.speed")


class _Counters:
    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.first_error: str | None = None
        self.unreachable = False

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.sent += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(err.str())
            # Timed out for want of a broker: producing more would only time out too.
            self.unreachable = self.unreachable or err.code() in UNREACHABLE_CODES


class _Unreachable(Exception):  # noqa: N818 - ends the produce loop, not a failure of it
    pass


def produce_load(
    config: Mapping[str, Any],
    topic: str,
    gen: Generator,
    count: int,
    rate: float | None,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> LoadReport:
    """Produce `count` records of `gen` to `topic`, at most `rate` per second (None: no limit).

    `config` is the producer's (processor.clients.plain_producer). Delivery errors are counted,
    not raised. Ctrl-C stops producing, flushes what was produced and reports
    `interrupted=True`. Deliveries that time out for want of a broker (the producer's
    `message.timeout.ms`) stop producing: `unreachable=True`. The time runs from the first
    record to the end of the final flush.
    """
    producer = Producer(dict(config))
    counters = _Counters()
    bucket = TokenBucket(rate) if rate else None
    produced = 0
    produce_failed = 0
    total_bytes = 0
    interrupted = False

    bar = Progress(
        TextColumn("[bold]load[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    started = time.monotonic()
    with bar:
        task = bar.add_task(topic, total=count)
        try:
            for record in gen.records(count):
                if bucket is not None:
                    delay = bucket.wait_time()
                    while delay > 0:
                        producer.poll(delay)  # sleep while serving delivery callbacks
                        delay = bucket.wait_time()
                    bucket.take()
                if counters.unreachable:
                    raise _Unreachable
                while True:
                    try:
                        producer.produce(
                            topic,
                            value=record.value,
                            key=record.key,
                            timestamp=record.timestamp_ms,
                            on_delivery=counters.on_delivery,
                        )
                        break
                    except BufferError:  # local queue full: let it drain
                        producer.poll(0.05)
                        if counters.unreachable:
                            raise _Unreachable from None
                    except KafkaException as exc:
                        produce_failed += 1
                        if counters.first_error is None:
                            counters.first_error = str(exc)
                        break
                produced += 1
                total_bytes += len(record.key) + len(record.value or b"")
                if produced % _POLL_EVERY == 0:
                    producer.poll(0)
                    bar.update(task, completed=produced)
        except KeyboardInterrupt:
            interrupted = True
        except _Unreachable:
            pass
        bar.update(task, completed=produced, description=f"{topic} (flushing)")
        remaining = producer.flush(_FLUSH_TIMEOUT_S)
        bar.update(task, description=topic)
    seconds = time.monotonic() - started
    return LoadReport(
        sent=counters.sent,
        failed=counters.failed + produce_failed + remaining,
        seconds=seconds,
        bytes=total_bytes,
        interrupted=interrupted,
        first_error=counters.first_error,
        unreachable=counters.unreachable,
    )
