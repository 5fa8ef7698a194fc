"""The I/O floor of this job: tmf-events' output and transaction sequence, with no decision.

The same transactional loop as the processor, with its exact client settings
(processor/clients.py), producing per input record one real tmf-events event — its value and
all its `ce_` headers, taken in turn from what the processor's core emits for the same input —
and, per batch, one changelog record per key whose state the input changed, with the
processor's commit sequence: flush → changelog → flush → offsets → commit
(docs/runtime.md#the-commit). Which records change a key's state is looked up, not decided.

No Python processor on this client can produce this job's output faster: the gap between
this and tmf-events is tmf-events' own work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from bench.peers import PeerResult
from processor import clients
from processor.config import Settings
from processor.messages import OutMessage
from processor.records import InputRecord
from processor.state.codec import without_events
from processor.task import new_task

__all__ = ["Output", "job_output", "run_floor"]


@dataclass(frozen=True)
class Output:
    """What the floor produces: events to cycle through, and the changelog value of every
    input record that changed its key's state, by (partition, offset)."""

    events: list[OutMessage]
    changelog: dict[tuple[int, int], tuple[bytes, bytes]]  # -> (key, value)

    def slim(self) -> Output:
        """The same with changelog values that leave out the last event (a cost measurement:
        what keeping the event JSON for the query API costs)."""
        slim = {at: (key, without_events(value)) for at, (key, value) in self.changelog.items()}
        return Output(self.events, slim)


def job_output(settings: Settings) -> Output:
    """Read the input topic to its end and run the processor's core over it, as replay does."""
    reader = Consumer(clients.committed_reader(settings, "floor-setup"))
    meta = reader.list_topics(settings.input_topic, timeout=30).topics[settings.input_topic]
    partitions = sorted(meta.partitions)
    reader.assign([TopicPartition(settings.input_topic, p, 0) for p in partitions])
    records: list[InputRecord] = []
    ended: set[int] = set()
    while len(ended) < len(partitions):
        for msg in reader.consume(10_000, 1.0):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    ended.add(msg.partition() or 0)
                continue
            _type, ts = msg.timestamp()
            records.append(
                InputRecord(
                    settings.input_topic,
                    msg.partition() or 0,
                    msg.offset() or 0,
                    ts,
                    msg.key(),
                    msg.value(),
                )
            )
    reader.close()
    task = new_task(settings)
    events: list[OutMessage] = []
    changelog: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        result = task.process(record)
        events += [m for m in result.messages if result.outcome == "emit"]
        if result.encoded is not None and result.key is not None:
            changelog[(record.partition, record.offset)] = (result.key.encode(), result.encoded)
        task.commit()
    if not events:
        raise ValueError("the input gives no events")
    return Output(events, changelog)


def run_floor(
    settings: Settings,
    output: Output,
    *,
    expected: int,
    timeout_s: float,
    one_flush: bool = False,
    on_commit: Callable[[int], None] | None = None,
) -> PeerResult:
    """Run the floor loop until `expected` input records are committed (or `timeout_s`).

    `one_flush` leaves out the flush between the events and the changelog (a cost
    measurement: the processor keeps it, docs/runtime.md#the-commit). `on_commit` hears the
    records committed so far after each commit."""
    consumer = Consumer(clients.processor_consumer(settings))
    producer = Producer(clients.transactional_producer(settings))
    producer.init_transactions(30)

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        # As the processor does once a partition is restored: the committed offset, else
        # the beginning (the client's own reset does not start a cooperative assignment here).
        start = [
            TopicPartition(
                tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            )
            for tp in c.committed(partitions, timeout=30)
        ]
        c.incremental_assign(start)

    consumer.subscribe([settings.input_topic], on_assign=on_assign)
    events, changelog_of = output.events, output.changelog
    interval_s = settings.commit_interval_ms / 1000
    deadline = time.monotonic() + timeout_s
    committed = produced = turn = batch = 0
    first_at: float | None = None
    started = last_commit_at = 0.0
    offsets: dict[int, int] = {}
    changed: dict[tuple[int, bytes], bytes] = {}  # the newest state per changed key
    while committed < expected and time.monotonic() < deadline:
        timeout = max(0.0, started + interval_s - time.monotonic()) if batch else 0.2
        msg: Message
        for msg in consumer.consume(settings.max_batch - batch, timeout):
            if msg.error() is not None:
                continue
            p, offset = msg.partition() or 0, msg.offset() or 0
            if not batch:
                started = time.monotonic()
                first_at = first_at or started
                producer.begin_transaction()
            event = events[turn % len(events)]
            turn += 1
            _produce(producer, event.topic, event.value, event.key, None, event.headers)
            state = changelog_of.get((p, offset))
            if state is not None:
                changed[(p, state[0])] = state[1]
            offsets[p] = offset + 1
            batch += 1
        due = batch >= settings.max_batch or time.monotonic() - started >= interval_s
        if batch and (due or committed + batch >= expected):
            if not one_flush:
                producer.flush(30)
            for (p, key), value in changed.items():
                _produce(producer, settings.changelog_topic, value, key, p, None)
            producer.flush(30)
            tps = [TopicPartition(settings.input_topic, p, o) for p, o in offsets.items()]
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            committed += batch
            produced += batch + len(changed)
            last_commit_at = time.monotonic()
            if on_commit is not None:
                on_commit(committed)
            batch = 0
            offsets, changed = {}, {}
    consumer.close()
    seconds = last_commit_at - first_at if first_at else 0.0
    return PeerResult.of("floor", committed, produced, seconds)


def _produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    partition: int | None,
    headers: Any,  # the OutMessage's list of (name, value) pairs
) -> None:
    while True:
        try:
            if partition is None:
                producer.produce(topic, value, key, headers=headers)
            else:
                producer.produce(topic, value, key, partition, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)  # local queue full: let deliveries drain
