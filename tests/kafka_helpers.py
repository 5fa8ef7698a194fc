"""Small helpers for tests that talk to a real broker (embedded, external or testcontainers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from processor.dev.broker import BrokerNotInstalledError, EmbeddedBroker, free_port

if TYPE_CHECKING:
    from confluent_kafka._types import HeadersType

__all__ = [
    "Broker",
    "Header",
    "OutRecord",
    "Record",
    "consume_all",
    "create_topics",
    "free_port",
    "produce",
    "unique_name",
    "wait_until",
]

T = TypeVar("T")
Header = tuple[str, bytes | None]
BrokerKind = Literal["noida", "tansu", "external", "testcontainers"]
Isolation = Literal["read_committed", "read_uncommitted"]
Bytesish = str | bytes | None
# (key, value, headers, partition); headers may be None, partition None = the partitioner.
OutRecord = tuple[Bytesish, Bytesish, Sequence[tuple[str, Bytesish]] | None, int | None]

# Tansu holds an empty fetch for the full fetch.wait.max.ms (500 ms by default); a short wait
# keeps the end-of-partition detection quick on every broker. noida-db ignores fetch.max.bytes
# and answers a fetch from the start with a whole partition: over librdkafka's 100 MB default
# response limit (a 100k-record topic) the client retries that fetch forever.
FAST_FETCH = {
    "fetch.wait.max.ms": 50,
    "receive.message.max.bytes": 2_147_483_647,
    "log_level": 3,
}


@dataclass(frozen=True)
class Broker:
    """What a test needs to know about the broker it runs against."""

    bootstrap_servers: str
    kind: BrokerKind
    embedded: EmbeddedBroker | None = None  # shared: read logs, never restart or kill it

    @property
    def hides_aborted_transactions(self) -> bool:
        """read_committed hides aborted and zombie records everywhere but on Tansu."""
        return self.kind != "tansu"

    def logs(self) -> str:
        return self.embedded.logs() if self.embedded is not None else ""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (None if absent or null)."""
        values = [value for key, value in self.headers if key == name]
        return values[-1] if values else None


def _headers(raw: HeadersType | None) -> list[Header]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]


def embedded_broker(kind: Literal["noida", "tansu"]) -> Iterator[Broker]:
    """A started embedded broker for a fixture (skips the test when it is not installed)."""
    import pytest

    try:
        broker = EmbeddedBroker(kind)
        broker.start()
    except BrokerNotInstalledError as exc:
        pytest.skip(str(exc))
    try:
        yield Broker(broker.bootstrap_servers, kind, broker)
    finally:
        broker.stop()


def unique_name(prefix: str) -> str:
    """A topic / group / transactional id that no other test or test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Poll `predicate` until it returns something truthy (and return that) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout:g} s)")
        time.sleep(interval)


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    config: Mapping[str, str] | None = None,
    *,
    timeout: float = 30,
) -> None:
    """Create `{name: partitions}` (replication 1) with `config`; wait until metadata has them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for name, partitions in topics.items()
    ]
    # `admin` stays referenced until every future resolved (docs/testing.md#brokers-for-tests client
    # gotcha).
    futures = admin.create_topics(new, request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)

    def all_visible() -> bool:
        metadata = admin.list_topics(timeout=timeout)
        for name, partitions in topics.items():
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or len(topic.partitions) != partitions:
                return False
        return True

    wait_until(all_visible, timeout, message=f"topics {sorted(topics)} not in the metadata")


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[OutRecord],
    *,
    config: Mapping[str, object] | None = None,
    timeout: float = 30,
) -> list[tuple[int, int]]:
    """Produce and flush; return (partition, offset) per record; raise if any delivery failed."""
    producer = Producer({"bootstrap.servers": bootstrap, **(config or {})})
    delivered: list[tuple[int | None, int | None]] = []
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)
        else:
            delivered.append((message.partition(), message.offset()))

    count = 0
    for key, value, headers, partition in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            # -1 = RD_KAFKA_PARTITION_UA: let the partitioner choose.
            partition=-1 if partition is None else partition,
            headers=list(headers) if headers is not None else None,
            on_delivery=on_delivery,
        )
        count += 1
        producer.poll(0)
    remaining = producer.flush(timeout)
    if errors or remaining or len(delivered) != count:
        raise AssertionError(
            f"produce to {topic}: {len(delivered)}/{count} delivered, "
            f"{remaining} still queued, errors {errors}"
        )
    return [(p, o) for p, o in delivered if p is not None and o is not None]


def consume_all(
    bootstrap: str,
    topics: str | Sequence[str],
    *,
    isolation: Isolation = "read_committed",
    expected: int | None = None,
    timeout: float,
    config: Mapping[str, object] | None = None,
) -> list[Record]:
    """Read `topics` from the beginning without joining a group.

    Stops when `expected` records arrived, or (expected=None) when every partition reported its
    end: the high watermark, or for read_committed the last stable offset, so an open
    transaction ends the read instead of blocking it. The end comes from librdkafka's
    end-of-partition events (the fetch responses), not from ListOffsets, which Tansu answers
    wrongly. Raises AssertionError at the deadline.
    """
    names = [topics] if isinstance(topics, str) else list(topics)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("consume-all"),  # never joined or committed: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            **FAST_FETCH,
            **(config or {}),
        }
    )
    records: list[Record] = []
    try:
        metadata = consumer.list_topics(timeout=timeout)
        partitions: list[KafkaTopicPartition] = []
        for name in names:
            described = metadata.topics.get(name)
            if described is None or described.error is not None or not described.partitions:
                raise AssertionError(f"topic {name!r} not found on {bootstrap}")
            partitions += [
                KafkaTopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(described.partitions)
            ]
        consumer.assign(partitions)
        at_end: dict[tuple[str, int], bool] = {(tp.topic, tp.partition): False for tp in partitions}
        deadline = time.monotonic() + timeout
        while True:
            if expected is not None and len(records) >= expected:
                return records
            if expected is None and all(at_end.values()):
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                want = (
                    f"{expected} records" if expected is not None else "the end of every partition"
                )
                raise AssertionError(
                    f"consume_all {names}: waited {timeout:g} s for {want}, got {len(records)}"
                )
            message = consumer.poll(min(remaining, 0.2))
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            at_end[(topic, partition)] = error is not None  # an error here is end-of-partition
            if error is not None:
                continue
            records.append(
                Record(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=message.key(),
                    value=message.value(),
                    headers=_headers(message.headers()),
                )
            )
    finally:
        consumer.close()
