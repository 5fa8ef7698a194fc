"""Dead letters (docs/runtime.md#exactly-once): the original bytes with the reason in headers."""

from __future__ import annotations

from processor.messages import OutMessage
from processor.records import InputRecord, Rejection

ERROR = "tmf-events-error"
ERROR_MESSAGE = "tmf-events-error-message"
SOURCE_TOPIC = "tmf-events-source-topic"
SOURCE_PARTITION = "tmf-events-source-partition"
SOURCE_OFFSET = "tmf-events-source-offset"


TRUNCATED = "tmf-events-truncated"


def dead_letter(
    record: InputRecord, rejection: Rejection, dlq_topic: str, max_bytes: int = 1_000_000
) -> OutMessage:
    """The record as a dead letter: its own bytes and headers, plus the reason and where it
    came from; a value too large to send again is cut to fit `max_bytes` (and says so)."""
    headers = list(record.headers)
    headers += [
        (ERROR, rejection.reason.encode()),
        (ERROR_MESSAGE, rejection.message.encode("utf-8", "replace")),
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
    ]
    value = record.value
    framing = len(record.key or b"") + sum(len(k) + len(v or b"") for k, v in headers) + 256
    if value is not None and len(value) + framing > max_bytes:
        # Larger than one Kafka message may be: keep the head, say how long the original
        # was (it is still on the input topic at the source offset).
        headers.append((TRUNCATED, str(len(value)).encode()))
        value = value[: max(0, max_bytes - framing - 64)]
    # Same partition number as the input: the DLQ topic is created with as many partitions.
    return OutMessage(dlq_topic, record.partition, record.key, value, headers)
