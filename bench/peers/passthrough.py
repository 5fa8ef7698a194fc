"""The floor: a transactional consume→produce loop that copies every input record.

No decoding, no state: what exactly-once costs on this broker and client with the same batch policy
as the processor (docs/runtime.md#exactly-once: `max_batch` records or `commit_interval_ms`, one
transaction per batch, offsets via `send_offsets_to_transaction` with the consumer's group metadata,
read_committed consumer). Anything the processor does on top is its own cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from bench.peers import PeerResult

__all__ = ["run_passthrough"]

_CONSUME_CHUNK = 500  # records per consume() call


def run_passthrough(
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    *,
    group_id: str,
    transactional_id: str,
    max_batch: int = 2000,
    commit_interval_ms: int = 100,
    expected: int,
    timeout_s: float,
    kafka_config: Mapping[str, Any] | None = None,
) -> PeerResult:
    """Copy `input_topic` to `output_topic` until `expected` input records are committed.

    Stops early after `timeout_s` (counting from the call). `seconds` runs from the first
    record consumed to the last commit. `kafka_config` is added to both clients' settings.
    """
    extra = dict(kafka_config or {})
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Tansu's first join waits for the rebalance timeout (docs/testing.md#brokers-for-tests)
            "max.poll.interval.ms": 10_000,
            "session.timeout.ms": 6_000,
            **extra,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 10_000,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            **extra,
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([input_topic])

    deadline = time.monotonic() + timeout_s
    interval_s = commit_interval_ms / 1000
    records_in = records_out = 0  # committed
    first_at: float | None = None
    last_commit_at: float | None = None

    batch_in = batch_out = 0
    batch_started = 0.0
    offsets: dict[tuple[str, int], int] = {}
    in_txn = False

    def commit() -> None:
        nonlocal records_in, records_out, batch_in, batch_out, in_txn, last_commit_at
        if not in_txn:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise
            producer.abort_transaction(30)
            _rewind(consumer, offsets)
        else:
            records_in += batch_in
            records_out += batch_out
            last_commit_at = time.monotonic()
        in_txn = False
        batch_in = batch_out = 0
        offsets.clear()

    try:
        while records_in + batch_in < expected and time.monotonic() < deadline:
            wait = interval_s - (time.monotonic() - batch_started) if in_txn else interval_s
            want = min(_CONSUME_CHUNK, max_batch - batch_in)
            messages: list[Message] = consumer.consume(want, max(wait, 0.0))
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                if first_at is None:
                    first_at = time.monotonic()
                if not in_txn:
                    producer.begin_transaction()
                    in_txn = True
                    batch_started = time.monotonic()
                while True:
                    try:
                        producer.produce(
                            output_topic,
                            value=msg.value(),
                            key=msg.key(),
                            headers=msg.headers(),
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                batch_in += 1
                batch_out += 1
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                assert topic is not None and partition is not None and offset is not None
                offsets[(topic, partition)] = offset + 1
            producer.poll(0)
            if in_txn and (batch_in >= max_batch or time.monotonic() - batch_started >= interval_s):
                commit()
        commit()
    finally:
        if in_txn:  # an exception left a transaction open
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(10)
        consumer.close()
    seconds = (last_commit_at - first_at) if first_at and last_commit_at else 0.0
    return PeerResult.of("passthrough", records_in, records_out, seconds)


def _rewind(consumer: Consumer, offsets: Mapping[tuple[str, int], int]) -> None:
    """After an aborted batch, go back to the committed offsets of its partitions."""
    tps = [TopicPartition(t, p) for (t, p) in offsets]
    for tp in consumer.committed(tps, 30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
