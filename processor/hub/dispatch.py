"""Which replica delivers what: a consumer group on the output topics, and a worker per
subscription on each replica.

Hub replicas join one consumer group (`<app_id>-hub`) on the output topics only to split
their partitions: each replica pauses what it is assigned and reads nothing through the
group. For every subscription it then runs a worker (worker.py) over the owned partitions of
that subscription's topic. When partitions move, the losing replica's workers write their
positions before the group lets go (the revoke callback waits for them), and the gaining
replica reads the hub topic up to its end before starting, so delivery resumes where it
stood.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from processor import clients
from processor.hub.parts import HubParts
from processor.hub.query import QueryError, parse_query
from processor.hub.worker import Worker
from processor.schemas import event_names

log = logging.getLogger(__name__)

_POLL_S = 0.2
_RECONCILE_EVERY_S = 2.0


class Dispatcher:
    def __init__(
        self,
        parts: HubParts,
        topics: list[str],
        new_worker: Callable[..., Worker] = Worker,
    ) -> None:
        self.parts = parts
        self.topics = topics
        self.new_worker = new_worker
        self.owned: dict[str, set[int]] = {t: set() for t in topics}
        self.workers: dict[str, Worker] = {}
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.heartbeat = time.monotonic()
        self.joined = False
        # Revocation waits for a worker's delivery in flight: at most one request time.
        self.handover_s = parts.settings.hub_request_timeout_ms / 1000 + 10
        parts.store.changed.append(self.wake.set)

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.heartbeat
        return idle < 60, f"dispatcher last turned {idle:.0f} s ago"

    # -- the group member (main thread) ----------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        consumer = Consumer(clients.hub_member(self.parts.settings))
        consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        last = 0.0
        try:
            while not stop.is_set():
                self.heartbeat = time.monotonic()
                msg = consumer.poll(_POLL_S)
                if msg is not None and msg.error() is not None:
                    log.warning("hub group: %s", msg.error().str())  # type: ignore[union-attr]
                now = time.monotonic()
                if self.wake.is_set() or now - last >= _RECONCILE_EVERY_S:
                    self.wake.clear()
                    self.reconcile()
                    last = now
        finally:
            self.stop_workers()
            consumer.close()  # leaves the group: the others take the partitions over

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        self.joined = True
        if not self.parts.store.sync():
            log.warning("hub topic not read to its end: deliveries may repeat some events")
        with self.lock:
            for tp in partitions:
                self.owned.setdefault(tp.topic, set()).add(tp.partition)
            self.reconcile()
        log.info("hub owns %s", self._owned_text())

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self.lock:
            for tp in partitions:
                self.owned.get(tp.topic, set()).discard(tp.partition)
            self.reconcile()
        log.info("hub gave up %s; owns %s", _text(partitions), self._owned_text())

    def _owned_text(self) -> str:
        return ", ".join(f"{t}{sorted(p)}" for t, p in sorted(self.owned.items())) or "nothing"

    # -- workers ---------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One worker per subscription with owned partitions, given exactly those."""
        with self.lock:
            subs = {s.id: s for s in self.parts.store.all_subscriptions() if s.topic in self.owned}
            for sub_id in list(self.workers):
                if sub_id not in subs:
                    self._retire(sub_id)
            for sub in subs.values():
                partitions = frozenset(self.owned.get(sub.topic, ()))
                worker = self.workers.get(sub.id)
                if worker is not None and not worker.alive:
                    log.warning("subscription %s: restarting its delivery", sub.id)
                    worker = None
                if worker is None:
                    if not partitions:
                        continue
                    try:
                        query = parse_query(
                            sub.query,
                            sub.entity_type,
                            event_names(sub.entity_type, self.parts.settings.tmf_version),
                        )
                    except QueryError as exc:  # registered under other settings
                        log.error("subscription %s cannot be delivered: %s", sub.id, exc)
                        continue
                    worker = self.new_worker(sub, query, self.parts).start()
                    self.workers[sub.id] = worker
                if not worker.assign(partitions, self.handover_s):
                    log.warning("subscription %s: partitions not released in time", sub.id)
            self.parts.metrics.subscriptions.set(len(self.parts.store.all_subscriptions()))
            self.parts.metrics.owned_partitions.set(sum(len(p) for p in self.owned.values()))

    def forget(self, sub_id: str) -> None:
        """Stop delivering an unregistered subscription now (the HTTP thread that deleted it)."""
        with self.lock:
            self._retire(sub_id)

    def _retire(self, sub_id: str) -> None:
        worker = self.workers.pop(sub_id, None)
        if worker is None:
            return
        worker.stop(self.handover_s)
        # The worker's last positions may follow the tombstones: remove them once more.
        self.parts.store.delete_positions(
            (sub_id, worker.sub.topic, p) for p in sorted(worker.touched)
        )
        self.parts.store.flush()

    def stop_workers(self) -> None:
        with self.lock:
            for worker in self.workers.values():
                worker.stop(self.handover_s)
            self.workers.clear()
        self.parts.store.flush()


def _text(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
