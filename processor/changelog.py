"""Restoring a partition's state from the compacted changelog (DESIGN §6).

Restoration runs in steps on the loop's thread, interleaved with polling, so a rebalance
in the middle of it is handled like any other: revoked partitions are simply cancelled.
Values stay encoded until their key is first used, which keeps restoring fast.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from processor.config import Settings
from processor.logs import KAFKA_LOGGER
from processor.metrics import Metrics
from processor.state import StateStore

log = logging.getLogger(__name__)

_STEP_RECORDS = 20_000


def restore_consumer_config(settings: Settings) -> dict[str, Any]:
    from processor.loop import _PRODUCER_ONLY, _only

    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": f"{settings.app_id}-restore",  # required by the client; never committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        # Some Kafka-compatible brokers ignore fetch.max.bytes and answer with everything up
        # to the end; the client must not reject (and endlessly re-fetch) such a response.
        "receive.message.max.bytes": 2_147_483_647,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "client.id": f"{settings.app_id}-{settings.instance_id}-restore",
        "logger": KAFKA_LOGGER,
    }
    conf.update(
        {
            k: v
            for k, v in _only(settings.kafka, _PRODUCER_ONLY).items()
            if not k.startswith("group.")
        }
    )
    return conf


class Restorer:
    def __init__(self, settings: Settings, store: StateStore, metrics: Metrics) -> None:
        self.topic = settings.changelog_topic
        self.store = store
        self.metrics = metrics
        self.consumer = Consumer(restore_consumer_config(settings))
        self.active: dict[int, tuple[float, int]] = {}  # partition -> (started, records)

    def start(self, partitions: list[int]) -> None:
        for p in partitions:
            self.store.drop(p)
            self.store.partitions[p] = {}
            self.active[p] = (time.monotonic(), 0)
        self.consumer.incremental_assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
        )

    def cancel(self, partitions: list[int]) -> None:
        gone = [p for p in partitions if p in self.active]
        for p in gone:
            del self.active[p]
        if gone:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in gone])

    def step(self, timeout: float = 0.05) -> list[int]:
        """Read one chunk; return the partitions whose restore reached the end."""
        if not self.active:
            return []
        done: list[int] = []
        counts: dict[int, int] = {}
        put_raw = self.store.put_raw
        for msg in self.consumer.consume(_STEP_RECORDS, timeout):
            p = msg.partition() or 0
            if p not in self.active:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.append(p)
                else:
                    log.warning("changelog partition %d: %s", p, err.str())
                continue
            key = msg.key()
            if key is None:
                continue
            put_raw(p, key.decode(), msg.value())
            counts[p] = counts.get(p, 0) + 1
        total = 0
        for p, n in counts.items():
            started, seen = self.active[p]
            self.active[p] = (started, seen + n)
            total += n
        if total:
            self.metrics.restored.inc(total)
        finished = []
        for p in dict.fromkeys(done):
            started, seen = self.active.pop(p)
            took = time.monotonic() - started
            self.metrics.restore_duration.observe(took)
            log.info("partition %d: %d changelog records restored in %.2f s", p, seen, took)
            finished.append(p)
        if finished:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in finished])
        return finished

    def close(self) -> None:
        self.consumer.close()
