"""Loads for the tests that run against a broker: seeded synthetic change records
(`synthetic`), produced at a steady rate in a thread while the test does its work
(`PacedProducer`).

A load of `ENDLESS` records runs until the test ends it with `finish()`, so it outlasts
however long the test's restarts take and every kill lands in the middle of it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Self

from confluent_kafka import KafkaError, Message, Producer

from processor.dev.synthetic import Generator, Mix
from tests.processes import Send, produce_one

ENDLESS = sys.maxsize  # records: more than any test sends before it calls finish()


def synthetic(seed: int, count: int, keys: int, *, start_ms: int | None = None) -> Iterator[Send]:
    """`count` seeded synthetic change records (docs/design.md#input-change-records) over `keys`
    instances, keyed.

    Timestamps start an hour ago (inside any retention) and advance 1 ms per record.
    """
    start = start_ms if start_ms is not None else int(time.time() * 1000) - 3_600_000
    gen = Generator(seed=seed, keys=keys, mix=Mix(), start_ms=start, step_ms=1)
    for record in gen.records(count):
        yield Send(record.key, record.value, record.timestamp_ms)


class PacedProducer:
    """Produces `records` (in order, keyed with murmur2_random, idempotent) at about `rate`
    records per second in a thread. `wait()` returns the count once every record is
    acknowledged; delivery errors fail it. Broker outages are ridden out by the client."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        records: Iterable[Send],
        rate: float,
        *,
        config: dict[str, object] | None = None,
    ) -> None:
        self.topic = topic
        self.rate = rate
        self.records = records
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
                "log_level": 3,
                **(config or {}),
            }
        )
        self.sent = 0
        self.acked = 0
        self.errors: list[str] = []
        self.failure: BaseException | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{topic}", daemon=True)

    def _on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        if error is None:
            self.acked += 1
        else:
            self.errors.append(str(error))

    def _run(self) -> None:
        producer = self.producer
        started = time.monotonic()
        try:
            for record in self.records:
                if self._stop.is_set():
                    break
                produce_one(producer, self.topic, record, self._on_delivery)
                self.sent += 1
                # Pacing while serving delivery reports (poll returns early when it serves one).
                while not self._stop.is_set():
                    ahead = self.sent / self.rate - (time.monotonic() - started)
                    if ahead <= 0:
                        break
                    producer.poll(min(ahead, 0.05))
            remaining = producer.flush(300)
            if remaining:
                self.errors.append(f"{remaining} records not delivered within 300 s")
        except BaseException as exc:  # handed to the test by wait()
            self.failure = exc
        finally:
            self.done.set()

    def start(self) -> Self:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def wait(self, timeout: float = 600) -> int:
        """Until every record is produced and acknowledged; the number produced."""
        if not self.done.wait(timeout):
            raise AssertionError(f"load into {self.topic} not done after {timeout:g} s")
        self._thread.join(10)
        if self.failure is not None:
            raise AssertionError(f"load failed: {self.failure!r}") from self.failure
        assert not self.errors, f"load delivery errors: {self.errors[:3]}"
        assert self.acked == self.sent, f"{self.acked} of {self.sent} acknowledged"
        self.producer = None  # type: ignore[assignment]  # closed now, while the broker is up
        return self.sent

    def finish(self, timeout: float = 600) -> int:
        """Stop producing new records, wait for the produced ones; the number produced."""
        self._stop.set()
        return self.wait(timeout)

    def stop(self) -> None:
        """Abandon the load (test teardown after a failure)."""
        self._stop.set()
        self.done.wait(60)
