"""Dead letters (DESIGN §7): the original bytes with the reason in headers."""

from __future__ import annotations

from processor.messages import OutMessage
from processor.records import InputRecord, Rejection

ERROR = "tmf-events-error"
ERROR_MESSAGE = "tmf-events-error-message"
SOURCE_TOPIC = "tmf-events-source-topic"
SOURCE_PARTITION = "tmf-events-source-partition"
SOURCE_OFFSET = "tmf-events-source-offset"


def dead_letter(record: InputRecord, rejection: Rejection, dlq_topic: str) -> OutMessage:
    headers = list(record.headers)
    headers += [
        (ERROR, rejection.reason.encode()),
        (ERROR_MESSAGE, rejection.message.encode("utf-8", "replace")),
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
    ]
    # Same partition number as the input: the DLQ topic is created with as many partitions.
    return OutMessage(dlq_topic, record.partition, record.key, record.value, headers)
