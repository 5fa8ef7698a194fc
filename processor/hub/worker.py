"""One subscription's delivery on one replica: its own cursor over the owned partitions.

Each subscription reads the output partitions this replica owns with a consumer of its own,
from its own positions, and delivers the matching events one at a time, in offset order:
in order per partition, hence per subject (`ce_subject` is the record key). A failing
listener holds back only its own subscription: the event is retried (retry.py) until it is
delivered, and nothing after it in that subscription goes out before it.

Positions (the next offset per partition) are written to the hub topic every
`hub_position_interval_ms`, when a partition moves to another replica and when the
subscription stops; a crash re-delivers from the last written one (at least once).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

import orjson
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from processor import clients
from processor.config import Settings
from processor.hub.callbacks import Callback, parse_callback
from processor.hub.delivery import Poster, http_headers, listener_path
from processor.hub.model import Position, Subscription
from processor.hub.parts import HubParts
from processor.hub.query import Filter
from processor.hub.retry import Failures, RetryPolicy

log = logging.getLogger(__name__)

_POLL_S = 0.2
_BACKLOG_EVERY_S = 1.0


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        initial_s=settings.hub_retry_initial_ms / 1000,
        max_s=settings.hub_retry_max_ms / 1000,
        pause_after_s=settings.hub_pause_after_ms / 1000,
        probe_interval_s=settings.hub_probe_interval_ms / 1000,
    )


class Worker:
    """Delivers one subscription from the partitions it is given (`assign`)."""

    def __init__(
        self,
        sub: Subscription,
        query: Filter,
        parts: HubParts,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sub = sub
        self.query = query
        self.parts = parts
        settings = parts.settings
        self.callback: Callback = parse_callback(sub.callback)
        secret = settings.hub_signing_secret
        self.secret = secret.get_secret_value().encode() if secret is not None else None
        self.poster = Poster(
            parts.allowed,
            settings.hub_request_timeout_ms / 1000,
            settings.hub_max_response_bytes,
            parts.resolve,
        )
        self.clock, self.rand = clock, rand
        self.failures = Failures(retry_policy(settings))
        self.control = threading.Condition()
        self.wanted: frozenset[int] = frozenset()
        self.held: frozenset[int] = frozenset()
        self.stopping = False
        self.error: str | None = None
        self.last_error: str | None = None
        self.paused_since_ms: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"hub-{sub.id[:8]}", daemon=True)
        self.positions: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.touched: set[int] = set()  # partitions whose position this worker wrote
        self.pending: Message | None = None  # the event being delivered

    # -- control (any thread) --------------------------------------------------------------

    def start(self) -> Worker:
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def assign(self, partitions: frozenset[int], wait_s: float) -> bool:
        """Deliver from exactly these partitions; waits until the worker let go of the ones it
        no longer has (their positions written), at most `wait_s`."""
        deadline = time.monotonic() + wait_s
        with self.control:
            self.wanted = partitions
            self.control.notify_all()
            while self.held - partitions and self.thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.control.wait(left)
        return True

    def stop(self, wait_s: float) -> None:
        with self.control:
            self.stopping = True
            self.control.notify_all()
        self.thread.join(wait_s)

    # -- the delivery thread ---------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(clients.hub_cursor(self.parts.settings, self.sub.id))
        event_type = ""
        last_write = last_backlog = self.clock()
        try:
            while True:
                with self.control:
                    wanted = frozenset() if self.stopping else self.wanted
                    stopping = self.stopping
                if wanted != self.held:
                    if self.pending is not None and self.pending.partition() not in wanted:
                        self.pending = None
                    self._reassign(consumer, wanted)
                if stopping:
                    break
                if not self.held:
                    with self.control:
                        self.control.wait(1.0)
                    continue
                now = self.clock()
                if now - last_write >= self.parts.settings.hub_position_interval_ms / 1000:
                    self._catch_up(consumer)
                    self._write_positions(self.dirty)
                    last_write = now
                if now - last_backlog >= _BACKLOG_EVERY_S:
                    self._publish_backlog(consumer)
                    last_backlog = now
                if self.pending is None:
                    msg = consumer.poll(_POLL_S)
                    if msg is None:
                        self._publish_backlog(consumer)
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("subscription %s: %s", self.sub.id, err.str())
                        continue
                    p = msg.partition() or 0
                    if p not in self.held:
                        continue
                    chosen = self._event_type(msg)
                    if chosen is None:
                        self._advance(p, msg.offset() or 0)
                        continue
                    self.pending, event_type = msg, chosen
                if self._deliver(self.pending, event_type):
                    self._advance(self.pending.partition() or 0, self.pending.offset() or 0)
                    self.pending = None
        except Exception as exc:  # the dispatcher restarts the worker from stored positions
            log.exception("subscription %s: delivery stopped", self.sub.id)
            self.error = str(exc)
        finally:
            self._catch_up(consumer)
            self._write_positions(self.dirty)
            self.parts.store.flush()
            if self.failures.paused:
                self.parts.metrics.paused.dec()
            with contextlib.suppress(KeyError):
                self.parts.metrics.backlog.remove(self.sub.id)
            self.poster.close()
            consumer.close()
            with self.control:
                self.held = frozenset()
                self.control.notify_all()

    def _event_type(self, msg: Message) -> str | None:
        """The event's type when the subscription wants it, else None (skipped)."""
        value = msg.value()
        if value is None:
            return None
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning(
                "subscription %s: skipping a non-JSON record at %s/%s@%s",
                self.sub.id,
                msg.topic(),
                msg.partition(),
                msg.offset(),
            )
            return None
        if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
            return None
        return str(event["eventType"]) if self.query.matches(event) else None

    def _deliver(self, msg: Message, event_type: str) -> bool:
        body = msg.value() or b""
        raw = msg.headers() or []
        headers = http_headers(raw.items() if isinstance(raw, dict) else raw, body, self.secret)
        outcome = self.poster.post(
            self.callback, listener_path(self.callback, event_type), headers, body
        )
        entity = self.sub.entity_type
        self.parts.metrics.request_duration.observe(outcome.seconds)
        if self.failures.retries:
            self.parts.metrics.retries.labels(entity).inc()
        if outcome.delivered:
            self.parts.metrics.deliveries.labels(entity, event_type, "delivered").inc()
            _kind, stamp = msg.timestamp()
            if stamp > 0:
                self.parts.metrics.latency.observe(max(0.0, time.time() - stamp / 1000))
            if self.failures.succeeded():
                self.parts.metrics.paused.dec()
                self.paused_since_ms = None
                log.info("subscription %s resumed: %s answers", self.sub.id, self.sub.callback)
                self._write_positions(self.held, flush=True)
            self.last_error = None
            return True
        self.parts.metrics.deliveries.labels(entity, event_type, "failed").inc()
        if outcome.sent:
            self.parts.metrics.uncertain.labels(entity).inc()
        self.last_error = outcome.error
        step = self.failures.failed(self.clock(), self.rand())
        if step.paused_now:
            self.parts.metrics.paused.inc()
            self.paused_since_ms = int(time.time() * 1000)
            log.warning(
                "subscription %s paused: %s has failed for %.0f s (last: %s); probing every %.0f s",
                self.sub.id,
                self.sub.callback,
                self.parts.settings.hub_pause_after_ms / 1000,
                outcome.error,
                self.parts.settings.hub_probe_interval_ms / 1000,
            )
            self._write_positions(self.held, flush=True)
        with self.control:
            if not self.stopping and self.wanted == self.held:
                self.control.wait(step.delay_s)
        return False

    def _advance(self, partition: int, offset: int) -> None:
        self.positions[partition] = offset + 1
        self.dirty.add(partition)

    def _catch_up(self, consumer: Consumer) -> None:
        """Positions past what the consumer skipped by itself (transaction markers, aborted
        records): where nothing is pending, the consumer's position is handled."""
        pending = self.pending.partition() if self.pending is not None else None
        held = [TopicPartition(self.sub.topic, p) for p in self.held if p != pending]
        if not held:
            return
        for tp in consumer.position(held):
            if tp.offset > self.positions.get(tp.partition, tp.offset):
                self.positions[tp.partition] = tp.offset
                self.dirty.add(tp.partition)

    def _reassign(self, consumer: Consumer, wanted: frozenset[int]) -> None:
        gone, new = self.held - wanted, wanted - self.held
        if gone:
            self._catch_up(consumer)
            self._write_positions(gone, flush=True)
            consumer.incremental_unassign([TopicPartition(self.sub.topic, p) for p in gone])
            for p in gone:
                self.positions.pop(p, None)
                self.dirty.discard(p)
        if new:
            stored = self.parts.store.positions_of(self.sub.id)
            starts = []
            for p in sorted(new):
                pos = stored.get((self.sub.topic, p))
                offset = pos.offset if pos is not None else self.sub.start.get(p, 0)
                if pos is not None and pos.paused and not self.failures.paused:
                    # Paused where it was delivered before: go on probing, not retrying.
                    self.failures.paused, self.failures.since = True, self.clock()
                    self.paused_since_ms = pos.paused_since_ms
                    self.last_error = pos.last_error
                    self.parts.metrics.paused.inc()
                self.positions[p] = offset
                starts.append(TopicPartition(self.sub.topic, p, offset))
            consumer.incremental_assign(starts)
        with self.control:
            self.held = wanted
            self.control.notify_all()

    def _write_positions(self, partitions: set[int] | frozenset[int], flush: bool = False) -> None:
        now_ms = int(time.time() * 1000)
        for p in sorted(partitions):
            offset = self.positions.get(p)
            if offset is None:
                continue
            self.parts.store.put_position(
                self.sub.id,
                self.sub.topic,
                p,
                Position(
                    offset=offset,
                    paused=self.failures.paused,
                    paused_since_ms=self.paused_since_ms if self.failures.paused else None,
                    last_error=self.last_error,
                    updated_ms=now_ms,
                ),
            )
            self.dirty.discard(p)
            self.touched.add(p)
        if flush:
            self.parts.store.flush()

    def _publish_backlog(self, consumer: Consumer) -> None:
        self._catch_up(consumer)
        total = 0
        for p in self.held:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.sub.topic, p), cached=True
                )
            except Exception:  # no fetch answer yet: nothing known
                continue
            if high >= 0:
                total += max(0, high - self.positions.get(p, high))
        self.parts.metrics.backlog.labels(self.sub.id).set(total)
