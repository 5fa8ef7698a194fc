"""Stand-ins for confluent_kafka's consumed messages, for tests of code that reads them
(Task.take and the C batch path read exactly these methods)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError

from processor.records import InputRecord


@dataclass(frozen=True)
class FakeMessage:
    """A consumed message as confluent_kafka.Message answers for it."""

    topic_: str
    partition_: int
    offset_: int
    timestamp_ms: int | None
    key_: bytes | None
    value_: bytes | None
    headers_: list[tuple[str, bytes | None]] | None = None
    error_: KafkaError | None = None

    @classmethod
    def of(cls, record: InputRecord) -> FakeMessage:
        headers = list(record.headers) or None  # the client answers None for no headers
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
            record.key,
            record.value,
            headers,
        )

    @classmethod
    def failed(cls, error: KafkaError, partition: int = 0) -> FakeMessage:
        return cls("", partition, -1, None, None, None, None, error)

    def error(self) -> KafkaError | None:
        return self.error_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        # (TIMESTAMP_CREATE_TIME, ms), or (TIMESTAMP_NOT_AVAILABLE, 0)
        return (1, self.timestamp_ms) if self.timestamp_ms is not None else (0, 0)

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.headers_
