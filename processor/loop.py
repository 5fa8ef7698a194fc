"""The processor's poll loop and rebalance callbacks: the imperative shell around the task.

One batch = one Kafka transaction holding the batch's events, dead letters, changelog
writes and input offsets (docs/runtime.md#one-batch-one-transaction). The task
(processor/task.py) stages the batch's states; the producer wrapper (processor/producer.py)
classifies every failure into "abort and redo the batch" or "exit 3".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from processor import clients, native, positions
from processor.config import Settings
from processor.messages import OutMessage
from processor.metrics import Metrics
from processor.producer import TXN_TIMEOUT_S, AbortBatch, FatalError, TransactionalProducer
from processor.state.restore import Restorer
from processor.state.snapshot import check_state_dir
from processor.task import Tallies, new_task
from processor.topics import ensure_topics

log = logging.getLogger(__name__)

_LAG_INTERVAL_S = 1.0
STUCK_AFTER_S = max(60.0, 3 * TXN_TIMEOUT_S)  # a loop this long in one client call is stuck

__all__ = ["FatalError", "Processor"]


class Processor:
    """The consume → decide → produce loop of one replica.

    `run()` returns 0 after a stop (SIGTERM, or `stop` set) with the open batch committed;
    it raises FatalError when the replica must exit 3. `on_commit` observers get each
    committed batch's tallies (after the metrics are published).
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
        create_topics: bool = True,
        on_commit: Callable[[Tallies], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics.of(settings)
        self.stop_event = stop if stop is not None else threading.Event()
        self.create_topics = create_topics
        self.on_commit = on_commit
        self.task = new_task(settings)
        self.store = self.task.store
        self.assigned: set[int] = set()
        self.restoring: set[int] = set()
        self.reseek: set[int] = set()  # restored, waiting for the client to take a seek
        self.ever_assigned = False
        self.heartbeat = time.monotonic()
        self.next_lag_update = 0.0
        self.batch_started = 0.0
        self.first_record_at: float | None = None
        self.consumer: Consumer | None = None
        self.producer: TransactionalProducer | None = None
        self.restorer: Restorer | None = None
        self.input = settings.input_topic

    # -- health ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if self.producer is None:
            return False, "producer not initialised"
        if not self.ever_assigned:
            return False, "waiting for the first partition assignment"
        if self.restoring:
            return False, f"restoring partitions {sorted(self.restoring)}"
        return True, f"assigned partitions {sorted(self.assigned)}"

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.heartbeat
        if idle > STUCK_AFTER_S:
            return False, f"loop has not turned for {idle:.0f} s"
        return True, "loop turning"

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        if s.state_dir is not None:
            check_state_dir(s.state_dir)
        if self.create_topics:
            ensure_topics(s)
        producer = TransactionalProducer(
            clients.transactional_producer(s), stop=self.stop_event, beat=self._beat
        )
        log.info(
            "starting: app_id=%s instance_id=%s input=%s transactional.id=%s core=%s",
            s.app_id,
            s.instance_id,
            self.input,
            producer.config["transactional.id"],
            native.describe(s),
        )
        producer.init()
        self.producer = producer
        self.restorer = Restorer(s, self.store, self.metrics)
        self.consumer = Consumer(clients.processor_consumer(s))
        self.consumer.subscribe(
            [self.input],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            self._loop()
            self._commit()
        finally:
            self._close()
        log.info("stopped cleanly")
        return 0

    def _close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception as exc:  # closing must not mask why the run ended
                log.warning("consumer close: %s", exc)
        if self.restorer is not None:
            self.restorer.close()
        if self.producer is not None:
            self.producer.close()
        # Drop the clients now: their destructors close connections while the broker is up.
        self.consumer = self.producer = self.restorer = None
        self.metrics.ready.set(0)

    def _loop(self) -> None:
        assert self.consumer is not None and self.restorer is not None
        s = self.settings
        interval = s.commit_interval_ms / 1000.0
        task = self.task
        while not self.stop_event.is_set():
            self._beat()
            if self.restoring:
                for p in [*self.restorer.step(), *sorted(self.reseek)]:
                    self._restored(p)
            if task.records:
                timeout = max(0.0, self.batch_started + interval - time.monotonic())
                msgs = self.consumer.consume(s.max_batch - task.records, timeout)
            else:
                # consume() waits for all it asks for or the timeout: the batch opens with
                # the first record, with what is fetched already, not after a full wait.
                msgs = self.consumer.consume(1, 0.01 if self.restoring else 0.2)
                if msgs:
                    msgs += self.consumer.consume(s.max_batch - 1, 0)
            try:
                self._process(msgs)
            except AbortBatch as exc:
                self._abort(str(exc))
                continue
            if task.records and (
                task.records >= s.max_batch or time.monotonic() - self.batch_started >= interval
            ):
                self._commit()
            if time.monotonic() >= self.next_lag_update:
                self._update_lag()
            self.metrics.ready.set(1 if self.readiness()[0] else 0)

    def _process(self, msgs: list[Message]) -> None:
        assert self.producer is not None
        task, producer = self.task, self.producer
        before = task.records
        out: list[OutMessage] = []
        task.take(msgs, self.assigned - self.restoring, out, self._consumer_error)
        if task.records and not before:
            self.batch_started = time.monotonic()
            if self.first_record_at is None:
                self.first_record_at = self.batch_started
        if task.records:
            producer.begin()  # a transaction holds every batch that took a record
        produce = producer.produce
        for message in out:
            produce(message)

    def _consumer_error(self, err: KafkaError) -> None:
        # Message errors never carry the fatal flag; a static member fenced by its twin
        # arrives as code _FATAL.
        if err.fatal() or err.code() == KafkaError._FATAL:
            assert self.producer is not None
            self.producer.fail(f"consumer: {err.str()}")
        log.warning("consumer error: %s", err.str())

    # -- transactions ------------------------------------------------------------------------
    def _commit(self) -> None:
        """Flush events, then changelog, then offsets, then commit (docs/runtime.md#the-commit)."""
        producer, task = self.producer, self.task
        if producer is None or not producer.open:
            task.abort()  # nothing began: records were all skipped before processing
            return
        assert self.consumer is not None
        started = time.monotonic()
        try:
            producer.flush()
            producer.produce_batch(self.settings.changelog_topic, task.changelog())
            producer.flush()
            offsets = [TopicPartition(self.input, p, o) for p, o in task.offsets.items()]
            producer.commit(offsets, self.consumer.consumer_group_metadata())
        except AbortBatch as exc:
            self._abort(str(exc))
            return
        tallies, touched = task.commit(self.assigned)
        keys = {p: self.store.keys(p) for p in touched}
        self.metrics.publish_commit(tallies, time.monotonic() - started, keys)
        if tallies.dead:
            log.warning("batch dead-lettered %s", tallies.dead_summary())
        if self.on_commit is not None:
            self.on_commit(tallies)

    def _abort(self, reason: str) -> None:
        """Abort, drop the staged state and rewind the input to the committed offsets."""
        assert self.producer is not None
        log.warning("aborting transaction: %s", reason)
        self.task.abort()
        self.producer.abort()
        self.metrics.transactions.labels("aborted").inc()
        # Every live partition: records fetched after the failing one were never processed.
        assert self.consumer is not None
        try:
            positions.rewind(
                self.consumer,
                self.input,
                sorted(self.assigned - self.restoring),
                stop=self.stop_event,
                beat=self._beat,
            )
        except FatalError as exc:
            self.producer.fail(str(exc))

    # -- rebalances ----------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self.restorer is not None
        self.metrics.rebalances.labels("assign").inc()
        new = [tp.partition for tp in partitions]
        log.info("assigned partitions %s; restoring their state", new)
        consumer.incremental_assign(partitions)
        consumer.pause(partitions)
        self.assigned.update(new)
        self.restoring.update(new)
        self.ever_assigned = True
        self.restorer.start(new)

    def _restored(self, p: int) -> None:
        assert self.consumer is not None
        if p not in self.assigned:
            self.restoring.discard(p)
            return
        start, where, reset = positions.resume_point(self.consumer, self.input, p)
        try:
            self.consumer.seek(TopicPartition(self.input, p, start))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:
                raise
            # A restore that ends at once can beat the client's own start of the assigned
            # partition ("Erroneous state"): it stays paused and is tried on the next turn.
            self.reseek.add(p)
            return
        self.reseek.discard(p)
        self.restoring.discard(p)
        if reset:
            self.metrics.offset_resets.inc()
        self.consumer.resume([TopicPartition(self.input, p)])
        keys = self.store.keys(p)
        self.metrics.state_keys.labels(str(p)).set(keys)
        log.info("partition %d restored (%d keys); consuming from %s", p, keys, where)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        gone = [tp.partition for tp in partitions]
        # Commit what was done (time-bounded by the flush/commit timeouts); else abort.
        # A fenced or failed producer commits nothing: its successor redoes the batch.
        if self.producer is not None and not self.producer.failed:
            log.info("partitions %s revoked; committing the open batch", gone)
            self._commit()
            assert self.restorer is not None
            self.restorer.save_snapshots([p for p in gone if p in self.assigned - self.restoring])
        self._drop(gone)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("lost").inc()
        gone = [tp.partition for tp in partitions]
        log.warning("partitions %s lost; aborting the open batch", gone)
        producer = self.producer
        if producer is not None and producer.open and not producer.failed:
            try:
                self._abort("partitions lost")
            except FatalError:
                raise
            except Exception as exc:  # never leave a rebalance callback with an error
                log.warning("abort after losing partitions: %s", exc)
        self._drop(gone)
        consumer.incremental_unassign(partitions)

    def _drop(self, partitions: list[int]) -> None:
        assert self.restorer is not None
        for p in partitions:
            self.assigned.discard(p)
            self.restoring.discard(p)
            self.reseek.discard(p)
            self.store.drop(p)
            self.metrics.forget_partition(p)
        self.restorer.cancel(partitions)

    def _update_lag(self) -> None:
        assert self.consumer is not None
        self.next_lag_update = time.monotonic() + _LAG_INTERVAL_S
        live = [TopicPartition(self.input, p) for p in self.assigned - self.restoring]
        if live:
            self.metrics.publish_lag(self.consumer, live)
