"""Where the input consumer reads from: back to the committed offsets after an abort, and the
start of a partition whose state was just restored (docs/runtime.md#rebalances)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    TopicPartition,
)

from processor.producer import TXN_TIMEOUT_S, FatalError

log = logging.getLogger(__name__)


def rewind(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    *,
    stop: threading.Event,
    beat: Callable[[], None],
) -> None:
    """Seek each partition back to its committed offset (after an aborted batch).

    Retried while the broker does not answer; raises FatalError when a seek fails: a restart
    resumes from the committed offsets, losing nothing, where carrying on could skip the
    aborted records.
    """
    if not partitions:
        return
    wanted = [TopicPartition(topic, p) for p in partitions]
    delay = 1.0
    while True:
        beat()  # waiting for the broker is not being stuck
        try:
            committed = consumer.committed(wanted, timeout=TXN_TIMEOUT_S)
            break
        except KafkaException as exc:
            if stop.is_set():
                return  # stopping: nothing was committed, the next start resumes
            log.warning("rewind: %s; retrying in %.0f s", exc.args[0], delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
    for tp in committed:
        offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        try:
            consumer.seek(TopicPartition(topic, tp.partition, offset))
        except KafkaException as exc:
            raise FatalError(f"rewind partition {tp.partition}: {exc.args[0]}") from exc


def resume_point(consumer: Consumer, topic: str, partition: int) -> tuple[int, str, bool]:
    """Where a restored partition starts: (offset, the same in words, whether the committed
    offset was no longer retained and the earliest record stands in for it)."""
    tp = TopicPartition(topic, partition)
    committed = consumer.committed([tp], timeout=TXN_TIMEOUT_S)[0].offset
    if committed == OFFSET_INVALID or committed < 0:
        return OFFSET_BEGINNING, "the beginning (nothing committed yet)", False
    low, _high = consumer.get_watermark_offsets(tp, timeout=TXN_TIMEOUT_S, cached=False)
    if committed < low:
        log.warning(
            "partition %d: committed offset %d is no longer retained (log starts at %d);"
            " continuing from the earliest retained record",
            partition,
            committed,
            low,
        )
        return low, f"the earliest retained offset {low}", True
    return committed, f"the committed offset {committed}", False
