"""The hub topic: every replica follows all of it; writes go through one producer.

Every replica reads the whole topic (read_committed, from the beginning) into memory: all
subscriptions and all positions. A write that an HTTP answer depends on (register,
unregister) is flushed and then waited for until this replica's follower has read it, so
the replica that answered sees its own write at once; the others see it within their
follower's next fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from processor import clients
from processor.config import Settings
from processor.errors import UsageError
from processor.hub.model import (
    Position,
    Subscription,
    parse_position_key,
    position_key,
    subscription_key,
)

log = logging.getLogger(__name__)

PositionKey = tuple[str, str, int]  # subscription id, output topic, partition
_TIMEOUT_S = 15.0
# Compaction keeps one record per key; tombstones of unregistered subscriptions go after a day.
HUB_TOPIC_CONFIG = {"cleanup.policy": "compact", "delete.retention.ms": "86400000"}


class HubSetupError(UsageError):
    """A topic layout the hub cannot run with (exit 2); the hint says what to do."""


def ensure_hub_topic(settings: Settings, output_topics: Iterable[str]) -> dict[str, int]:
    """Create the hub topic when missing; the partition count of every output topic.

    Raises HubSetupError when an output topic does not exist, KafkaException when Kafka does
    not answer within the bounded time.
    """
    admin = AdminClient(clients.admin(settings))
    meta = admin.list_topics(timeout=_TIMEOUT_S)
    counts: dict[str, int] = {}
    for name in output_topics:
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            setting = "service_topic" if name == settings.service_topic else "resource_topic"
            raise HubSetupError(
                f"output topic {name} does not exist",
                f"run `tmf-events topics` first, or point {setting} at the right topic",
                origin=settings.origin(setting),
            )
        counts[name] = len(topic.partitions)
    hub = meta.topics.get(settings.hub_topic)
    if hub is None or hub.error is not None or not hub.partitions:
        futures = admin.create_topics(
            [NewTopic(settings.hub_topic, 1, -1, config=dict(HUB_TOPIC_CONFIG))],
            operation_timeout=_TIMEOUT_S,
            request_timeout=_TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=_TIMEOUT_S)
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise HubSetupError(
                        f"cannot create the hub topic {name}: {exc.args[0].str()}",
                        "create it compacted, or set hub_topic",
                        origin=settings.origin("hub_topic"),
                    ) from exc
    return counts


class HubStore:
    """Subscriptions and positions, as read from the hub topic (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.hub_topic
        self.subscriptions: dict[str, Subscription] = {}
        self.positions: dict[PositionKey, Position] = {}
        self.cond = threading.Condition()
        self.read_to: dict[int, int] = {}  # hub partition -> next offset read
        self.caught_up = False
        self.error: str | None = None
        self.heartbeat = time.monotonic()
        self.changed: list[Callable[[], None]] = []  # called after each batch that changed
        self.stop_event = threading.Event()
        self.producer = Producer(clients.plain_producer(settings, "hub"))
        self.offsets_reader = Consumer(clients.committed_reader(settings, "hub-offsets"))
        self.offsets_lock = threading.Lock()
        self.thread = threading.Thread(target=self._follow, name="hub-store", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> HubStore:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.producer.flush(10)
        self.offsets_reader.close()

    def ready(self) -> tuple[bool, str]:
        if self.error is not None:
            return False, self.error
        if not self.caught_up:
            return False, f"reading the hub topic {self.topic}"
        return True, f"{len(self.subscriptions)} subscriptions"

    # -- reads -----------------------------------------------------------------------------

    def subscription(self, sub_id: str) -> Subscription | None:
        with self.cond:
            return self.subscriptions.get(sub_id)

    def all_subscriptions(self) -> list[Subscription]:
        with self.cond:
            return list(self.subscriptions.values())

    def positions_of(self, sub_id: str) -> dict[tuple[str, int], Position]:
        with self.cond:
            return {(t, p): pos for (s, t, p), pos in self.positions.items() if s == sub_id}

    def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        """The committed end (last stable offset) of each partition of `topic`."""
        out: dict[int, int] = {}
        with self.offsets_lock:
            for p in range(partitions):
                _low, high = self.offsets_reader.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=_TIMEOUT_S, cached=False
                )
                out[p] = int(high)
        return out

    def sync(self, timeout_s: float = _TIMEOUT_S) -> bool:
        """Until the follower has read everything written to the hub topic so far (what a
        previous owner of a partition last stored); False when that took too long."""
        ends: dict[int, int] = {}
        with self.offsets_lock:
            for p in list(self.read_to) or [0]:
                _low, high = self.offsets_reader.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=_TIMEOUT_S, cached=False
                )
                ends[p] = int(high)
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while any(self.read_to.get(p, 0) < end for p, end in ends.items()):
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return False
                self.cond.wait(left)
        return True

    # -- writes ----------------------------------------------------------------------------

    def put_subscription(self, sub: Subscription, timeout_s: float = _TIMEOUT_S) -> None:
        self._write_and_wait([(subscription_key(sub.id), sub.to_json())], timeout_s)

    def delete_subscription(self, sub_id: str, timeout_s: float = _TIMEOUT_S) -> None:
        with self.cond:
            keys = [position_key(s, t, p) for (s, t, p) in self.positions if s == sub_id]
        tombstones: list[tuple[str, bytes | None]] = [(subscription_key(sub_id), None)]
        self._write_and_wait(tombstones + [(k, None) for k in keys], timeout_s)

    def delete_positions(self, keys: Iterable[PositionKey]) -> None:
        for sub_id, topic, partition in keys:
            self._produce(position_key(sub_id, topic, partition), None)
        self.producer.poll(0)

    def put_position(self, sub_id: str, topic: str, partition: int, position: Position) -> None:
        """Asynchronous: delivery goes on; `flush` when it must be durable."""
        self._produce(position_key(sub_id, topic, partition), position.to_json())
        self.producer.poll(0)

    def flush(self, timeout_s: float = _TIMEOUT_S) -> bool:
        return self.producer.flush(timeout_s) == 0

    def _produce(
        self,
        key: str,
        value: bytes | None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                log.warning("hub topic write of %s failed: %s", key, err.str())
            if on_delivery is not None:
                on_delivery(err, msg)

        while True:
            try:
                self.producer.produce(self.topic, value, key.encode(), on_delivery=report)
                return
            except BufferError:
                self.producer.poll(0.1)  # the local queue is full: let it drain

    def _write_and_wait(self, records: list[tuple[str, bytes | None]], timeout_s: float) -> None:
        written: dict[int, int] = {}
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err.str())
            else:
                p, o = msg.partition() or 0, msg.offset() or 0
                written[p] = max(written.get(p, -1), o)

        for key, value in records:
            self._produce(key, value, on_delivery)
        if self.producer.flush(timeout_s) != 0 or errors:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, errors[0] if errors else "flush timed out")
            )
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while any(self.read_to.get(p, 0) <= o for p, o in written.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KafkaException(
                        KafkaError(KafkaError._TIMED_OUT, "hub topic follower is behind")
                    )
                self.cond.wait(left)

    # -- the follower ----------------------------------------------------------------------

    def _follow(self) -> None:
        consumer = Consumer(clients.committed_reader(self.settings, "hub-store"))
        try:
            partitions: list[int] = []
            while not self.stop_event.is_set() and not partitions:
                self.heartbeat = time.monotonic()
                meta = consumer.list_topics(self.topic, timeout=5)
                topic = meta.topics.get(self.topic)
                if topic is not None and topic.error is None and topic.partitions:
                    partitions = sorted(topic.partitions)
                else:
                    self.stop_event.wait(0.5)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            at_end: set[int] = set()
            while not self.stop_event.is_set():
                self.heartbeat = time.monotonic()
                msgs = consumer.consume(10_000, 0.2)
                changed = False
                with self.cond:
                    for msg in msgs:
                        err = msg.error()
                        p = msg.partition() or 0
                        if err is not None:
                            if err.code() == KafkaError._PARTITION_EOF:
                                at_end.add(p)
                                self.read_to[p] = max(self.read_to.get(p, 0), msg.offset() or 0)
                            else:
                                log.warning("hub topic: %s", err.str())
                            continue
                        self.read_to[p] = (msg.offset() or 0) + 1
                        changed |= self._apply(msg.key(), msg.value())
                    if not self.caught_up and at_end >= set(partitions):
                        self.caught_up = changed = True
                    self.cond.notify_all()
                if changed:
                    for callback in list(self.changed):
                        callback()
        except Exception as exc:  # /readyz says why; the process keeps serving what it has
            log.exception("hub topic follower stopped")
            self.error = f"hub topic follower stopped: {exc}"
        finally:
            consumer.close()

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> bool:
        """One record of the hub topic into memory; True when subscriptions changed."""
        if raw_key is None:
            return False
        key = raw_key.decode("utf-8", "replace")
        try:
            if key.startswith("subscription/"):
                sub_id = key[len("subscription/") :]
                if value is None:
                    return self.subscriptions.pop(sub_id, None) is not None
                self.subscriptions[sub_id] = Subscription.from_json(value)
                return True
            where = parse_position_key(key)
            if where is not None:
                if value is None:
                    self.positions.pop(where, None)
                else:
                    self.positions[where] = Position.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("hub topic: ignoring record %s: %s", key, exc)
        return False
