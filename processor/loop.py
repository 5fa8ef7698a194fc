"""The transactional consume → decide → produce loop (DESIGN §6-§7): the imperative shell.

One batch = one Kafka transaction holding the batch's events, dead letters, changelog
writes and input offsets. State writes are staged and reach the store only after the
commit succeeded, so an abort leaves memory exactly as the changelog has it.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from processor import clients, native
from processor.changelog import Restorer
from processor.compact import unpack
from processor.config import Settings
from processor.core import Core
from processor.messages import OutMessage
from processor.metrics import Metrics
from processor.records import InputRecord
from processor.state import State, encode_state
from processor.store import NOT_PACKED, StateStore
from processor.topics import ensure_topics

log = logging.getLogger(__name__)

_TXN_TIMEOUT_S = 30.0
_LAG_INTERVAL_S = 1.0  # bound for flush/commit calls; the broker-side timeout is separate


class FatalError(Exception):
    """The producer was fenced or hit a fatal error: exit non-zero, let the orchestrator restart."""


# (state, packed, encoded): the Python path's State, or the C path's packed state and its
# changelog value. Not the whole Result: its messages are produced and can go.
Staged = tuple[State | None, bytes | None, bytes | None]


@dataclass(slots=True)
class _Batch:
    started: float = 0.0
    open: bool = False  # a transaction has begun
    records: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    # The newest state per changed key, reaching the store once the batch commits.
    staged: dict[tuple[int, str], Staged] = field(default_factory=dict)
    first_time_ms: dict[int, int] = field(default_factory=dict)
    consumed: Tally[tuple[str, int]] = field(default_factory=Tally)
    emitted: Tally[tuple[str, str]] = field(default_factory=Tally)
    skipped: Tally[str] = field(default_factory=Tally)
    dead: Tally[str] = field(default_factory=Tally)
    times_ms: list[int] = field(default_factory=list)
    native_at_start: int = 0  # the core's count of C-path records when the batch began


def to_record(msg: Message) -> InputRecord:
    ts_type, ts = msg.timestamp()
    return InputRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
        key=msg.key(),
        value=msg.value(),
        headers=list(msg.headers() or ()),  # type: ignore[arg-type]
    )


class Processor:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.stop_event = stop if stop is not None else threading.Event()
        self.create_topics = create_topics
        self.core = Core(settings)
        self.store = StateStore(keep_events=settings.history > 1)
        self.batch = _Batch()
        self.assigned: set[int] = set()
        self.restoring: set[int] = set()
        self.ever_assigned = False
        self.producer_ready = False
        self.heartbeat = time.monotonic()
        self.next_lag_update = 0.0
        self.failed = False  # fenced or fatal: never commit again
        self.delivery_error: KafkaError | None = None
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.restorer: Restorer | None = None
        self.input = settings.input_topic

    # -- health ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if not self.producer_ready:
            return False, "producer not initialised"
        if not self.ever_assigned:
            return False, "waiting for the first partition assignment"
        if self.restoring:
            return False, f"restoring partitions {sorted(self.restoring)}"
        return True, f"assigned partitions {sorted(self.assigned)}"

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.heartbeat
        limit = max(60.0, 3 * _TXN_TIMEOUT_S)
        if idle > limit:
            return False, f"loop has not turned for {idle:.0f} s"
        return True, "loop turning"

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        if s.state_dir is not None:
            _check_state_dir(s.state_dir)
        if self.create_topics:
            ensure_topics(s)
        self.producer = self._new_producer()
        log.info(
            "starting: app_id=%s instance_id=%s input=%s transactional.id=%s-%s core=%s",
            s.app_id,
            s.instance_id,
            self.input,
            s.app_id,
            s.instance_id,
            native.describe(s),
        )
        self._init_transactions()
        self.producer_ready = True
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

    def _new_producer(self) -> Producer:
        conf = clients.transactional_producer(self.settings)
        conf["on_delivery"] = self._on_delivery
        return Producer(conf)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        # A delivery that failed (e.g. timed out during a broker outage) poisons the
        # transaction: the batch must be aborted, never committed.
        if err is not None and self.delivery_error is None:
            self.delivery_error = err

    def _init_transactions(self) -> None:
        """Fence any predecessor with our transactional.id and abort its open transaction.

        Retried while the broker is unreachable (a replica may start before Kafka does);
        a fatal error ends the run.
        """
        delay = 1.0
        while True:
            self.heartbeat = time.monotonic()
            try:
                self._call(lambda p: p.init_transactions(_TXN_TIMEOUT_S))
                return
            except _AbortBatchError as exc:
                if self.stop_event.is_set():
                    raise FatalError(f"stopped before the producer was ready: {exc}") from exc
                log.warning("init_transactions: %s; retrying in %.0f s", exc, delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 30.0)

    def _close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception as exc:  # closing must not mask why the run ended
                log.warning("consumer close: %s", exc)
        if self.restorer is not None:
            self.restorer.close()
        if self.producer is not None and not self.failed:
            self.producer.flush(5)
        # Drop the clients now: their destructors close connections while the broker is up.
        self.consumer = self.producer = self.restorer = None
        self.metrics.ready.set(0)

    def _loop(self) -> None:
        assert self.consumer is not None and self.restorer is not None
        s = self.settings
        interval = s.commit_interval_ms / 1000.0
        while not self.stop_event.is_set():
            self.heartbeat = time.monotonic()
            if self.restoring:
                for p in self.restorer.step():
                    self._restored(p)
            if self.batch.records:
                timeout = max(0.0, self.batch.started + interval - time.monotonic())
            else:
                timeout = 0.01 if self.restoring else 0.2
            msgs = self.consumer.consume(s.max_batch - self.batch.records, timeout)
            try:
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        self._consumer_error(err)
                        continue
                    self._process(msg)
            except _AbortBatchError as exc:
                self._abort(str(exc))
                continue
            if self.batch.records and (
                self.batch.records >= s.max_batch
                or time.monotonic() - self.batch.started >= interval
            ):
                self._commit()
            if time.monotonic() >= self.next_lag_update:
                self._update_lag()
            self.metrics.ready.set(1 if self.readiness()[0] else 0)

    def _update_lag(self) -> None:
        """Consumer lag per restored partition, from the client's cached watermarks."""
        assert self.consumer is not None
        self.next_lag_update = time.monotonic() + _LAG_INTERVAL_S
        live = [TopicPartition(self.input, p) for p in self.assigned - self.restoring]
        if not live:
            return
        for tp in self.consumer.position(live):
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if tp.offset >= 0 and high >= 0:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, high - tp.offset))

    def _consumer_error(self, err: KafkaError) -> None:
        # Message errors never carry the fatal flag; a static member fenced by its twin
        # arrives as code _FATAL.
        if err.fatal() or err.code() == KafkaError._FATAL:
            self._fail(FatalError(f"consumer: {err.str()}"))
        log.warning("consumer error: %s", err.str())

    # -- processing ------------------------------------------------------------------------
    def _process(self, msg: Message) -> None:
        p = msg.partition() or 0
        if p not in self.assigned or p in self.restoring:
            # Fetched before a revoke or pause took effect; it will be read again.
            return
        batch = self.batch
        if not batch.records:
            batch.started = time.monotonic()
            batch.native_at_start = self.core.native_records
        if not batch.open:
            self._call(lambda prod: prod.begin_transaction())
            batch.open = True
        record = to_record(msg)
        result = self.core.process(record, self._state_of, self._packed_of)
        for out in result.messages:
            self._produce(out)
        if result.key is not None and result.changed:
            batch.staged[(p, result.key)] = (result.state, result.packed, result.encoded)
        batch.records += 1
        batch.offsets[p] = record.offset + 1
        batch.consumed[(record.topic, p)] += 1
        outcome = result.outcome
        if outcome == "emit":
            et = result.entity_type or ""
            for name in result.event_types:
                batch.emitted[(et, name)] += 1
            if result.time_ms is not None:
                batch.times_ms.append(result.time_ms)
        elif outcome == "dead_letter":
            batch.dead[result.reason or "unknown"] += 1
        else:
            batch.skipped[outcome] += 1

    def _state_of(self, partition: int, key: str) -> State | None:
        staged = self.batch.staged.get((partition, key))
        if staged is None:
            return self.store.get(partition, key)
        state, packed, _ = staged
        return unpack(key, packed) if state is None and packed is not None else state

    def _packed_of(self, partition: int, key: str) -> bytes | None:
        staged = self.batch.staged.get((partition, key))
        if staged is None:
            return self.store.packed(partition, key)
        return staged[1] if staged[1] is not None else NOT_PACKED

    def _produce(self, out: OutMessage) -> None:
        assert self.producer is not None
        while True:
            try:
                headers: Any = out.headers
                if out.partition is None:
                    self.producer.produce(out.topic, out.value, out.key, headers=headers)
                else:
                    self.producer.produce(
                        out.topic, out.value, out.key, out.partition, headers=headers
                    )
                return
            except BufferError:
                self.producer.poll(0.05)  # local queue full: let deliveries drain
            except (KafkaException, SystemError) as exc:
                self._raise_for(_kafka_error_of(exc))

    # -- transactions ------------------------------------------------------------------------
    def _commit(self) -> None:
        """Flush events, then changelog, then offsets, then commit (DESIGN §7 ordering)."""
        batch = self.batch
        if not batch.open:
            self.batch = _Batch()
            return
        assert self.producer is not None and self.consumer is not None
        started = time.monotonic()
        try:
            self._flush()
            changelog = self.settings.changelog_topic
            encoded = {
                pk: enc if enc is not None else encode_state(_state(state))
                for pk, (state, _, enc) in batch.staged.items()
            }
            for (p, key), data in encoded.items():
                self._produce(OutMessage(changelog, p, key.encode(), data, []))
            self._flush()
            offsets = [TopicPartition(self.input, p, o) for p, o in batch.offsets.items()]
            meta = self.consumer.consumer_group_metadata()
            self._call(lambda prod: prod.send_offsets_to_transaction(offsets, meta, _TXN_TIMEOUT_S))
            self._commit_transaction()
        except _AbortBatchError as exc:
            self._abort(str(exc))
            return
        touched: set[int] = set()
        for (p, key), data in encoded.items():
            if p in self.assigned:
                state, packed, _ = batch.staged[(p, key)]
                if packed is not None:
                    self.store.put_packed(p, key, packed)
                else:
                    self.store.put(p, key, _state(state), data)
                touched.add(p)
        self.metrics.publish_state_keys({p: self.store.keys(p) for p in touched})
        now = time.time()
        self.metrics.commit_duration.observe(time.monotonic() - started)
        self.metrics.transactions.labels("committed").inc()
        self.metrics.publish_batch(
            batch.consumed,
            batch.emitted,
            batch.skipped,
            batch.dead,
            batch.records,
            self.core.native_records - batch.native_at_start,
        )
        self.metrics.observe_latencies(now, batch.times_ms)
        if batch.dead:
            log.warning(
                "batch dead-lettered %d records: %s",
                sum(batch.dead.values()),
                ", ".join(f"{r}={n}" for r, n in sorted(batch.dead.items())),
            )
        self.batch = _Batch()

    def _flush(self) -> None:
        assert self.producer is not None
        try:
            remaining = self.producer.flush(_TXN_TIMEOUT_S)
        except (KafkaException, SystemError) as exc:  # after a fencing: from a callback
            self._raise_for(_kafka_error_of(exc))
        failed, self.delivery_error = self.delivery_error, None
        if failed is not None:
            if failed.fatal():
                self._fail(FatalError(f"delivery failed: {failed.str()}"))
            raise _AbortBatchError(f"delivery failed: {failed.str()}")
        if remaining:
            raise _AbortBatchError(f"{remaining} messages not delivered within {_TXN_TIMEOUT_S} s")

    def _commit_transaction(self) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.commit_transaction(_TXN_TIMEOUT_S)
                return
            except (KafkaException, SystemError) as exc:
                err = _kafka_error_of(exc)
                if err.retriable() and not err.txn_requires_abort() and not err.fatal():
                    log.warning("commit retry: %s", err.str())
                    continue
                self._raise_for(err)

    def _call(self, fn: Any) -> None:
        """A transactional call; classify its failure (DESIGN §7)."""
        assert self.producer is not None
        try:
            fn(self.producer)
        except (KafkaException, SystemError) as exc:
            self._raise_for(_kafka_error_of(exc))

    def _fail(self, exc: FatalError) -> NoReturn:
        self.failed = True
        raise exc

    def _raise_for(self, err: KafkaError) -> NoReturn:
        if err.fatal() or err.code() in (KafkaError._FATAL, KafkaError._FENCED):
            self._fail(FatalError(f"producer fatal error (fenced?): {err.str()}"))
        if err.txn_requires_abort():
            raise _AbortBatchError(err.str())
        if err.code() == KafkaError._STATE and self.batch.open:
            # The transaction went bad underneath us (e.g. timed-out deliveries).
            raise _AbortBatchError(err.str())
        if err.retriable():
            raise _AbortBatchError(f"retriable: {err.str()}")
        self._fail(FatalError(f"producer error: {err.str()}"))

    def _abort(self, reason: str) -> None:
        """Abort, drop the staged state and rewind the input to the committed offsets."""
        assert self.producer is not None and self.consumer is not None
        log.warning("aborting transaction: %s", reason)
        self.batch = _Batch()
        self.delivery_error = None
        try:
            self.producer.abort_transaction(_TXN_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                self._fail(FatalError(f"abort failed: {err.str()}"))
            # Not aborted (e.g. the broker is still away): a fresh producer with the same
            # transactional.id fences this one and aborts its transaction, as a restart would.
            log.warning("abort did not complete (%s); starting a new producer", err.str())
            self.producer.purge()
            self.producer = self._new_producer()
            self._init_transactions()
        self.metrics.transactions.labels("aborted").inc()
        # Every live partition: records fetched after the failing one were never processed.
        self._rewind(sorted(self.assigned - self.restoring))

    def _rewind(self, partitions: list[int]) -> None:
        assert self.consumer is not None
        if not partitions:
            return
        wanted = [TopicPartition(self.input, p) for p in partitions]
        delay = 1.0
        while True:
            self.heartbeat = time.monotonic()  # waiting for the broker is not being stuck
            try:
                committed = self.consumer.committed(wanted, timeout=_TXN_TIMEOUT_S)
                break
            except KafkaException as exc:
                if self.stop_event.is_set():
                    return  # stopping: nothing was committed, the next start resumes
                log.warning("rewind: %s; retrying in %.0f s", exc.args[0], delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 30.0)
        for tp in committed:
            if tp.partition not in self.assigned:
                continue
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            try:
                self.consumer.seek(TopicPartition(self.input, tp.partition, offset))
            except KafkaException as exc:
                # Unable to go back: a restart resumes from the committed offsets, losing
                # nothing, where carrying on could skip the aborted records.
                self._fail(FatalError(f"rewind partition {tp.partition}: {exc.args[0]}"))

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
        self.restoring.discard(p)
        if p not in self.assigned:
            return
        tp = TopicPartition(self.input, p)
        committed = self.consumer.committed([tp], timeout=_TXN_TIMEOUT_S)[0].offset
        low, _high = self.consumer.get_watermark_offsets(tp, timeout=_TXN_TIMEOUT_S, cached=False)
        start = committed
        if committed == OFFSET_INVALID or committed < 0:
            start = OFFSET_BEGINNING
        elif committed < low:
            self.metrics.offset_resets.inc()
            log.warning(
                "partition %d: committed offset %d is no longer retained (log starts at %d);"
                " continuing from the earliest retained record",
                p,
                committed,
                low,
            )
            start = low
        self.consumer.seek(TopicPartition(self.input, p, start))
        self.consumer.resume([tp])
        self.metrics.state_keys.labels(str(p)).set(self.store.keys(p))
        log.info("partition %d restored (%d keys); consuming from %s", p, self.store.keys(p), start)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        gone = [tp.partition for tp in partitions]
        # Commit what was done (time-bounded by the flush/commit timeouts); else abort.
        # A fenced or failed producer commits nothing: its successor redoes the batch.
        if not self.failed:
            log.info("partitions %s revoked; committing the open batch", gone)
            self._commit()
            self._save_snapshots([p for p in gone if p in self.assigned - self.restoring])
        self._drop(gone)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("lost").inc()
        gone = [tp.partition for tp in partitions]
        log.warning("partitions %s lost; aborting the open batch", gone)
        if self.batch.open and not self.failed:
            try:
                self._abort("partitions lost")
            except FatalError:
                raise
            except Exception as exc:  # never leave a rebalance callback with an error
                log.warning("abort after losing partitions: %s", exc)
        self._drop(gone)
        consumer.incremental_unassign(partitions)

    def _save_snapshots(self, partitions: list[int]) -> None:
        assert self.restorer is not None
        try:
            self.restorer.save_snapshots(partitions)
        except Exception as exc:  # an optimisation: never fail a rebalance over it
            log.warning("snapshots of partitions %s not written: %s", partitions, exc)

    def _drop(self, partitions: list[int]) -> None:
        assert self.restorer is not None
        for p in partitions:
            self.assigned.discard(p)
            self.restoring.discard(p)
            self.store.drop(p)
            for gauge in (self.metrics.state_keys, self.metrics.lag):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(p))
        self.restorer.cancel(partitions)


class _AbortBatchError(Exception):
    pass


def _check_state_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise FatalError(f"state_dir {path} is not a writable directory: {exc}") from exc


def _kafka_error_of(exc: BaseException) -> KafkaError:
    """The KafkaError behind a client call's failure.

    When a callback run by flush/poll raises (the client does so itself on a fatal error),
    the next callback returns with that exception still set and CPython reports it as a
    SystemError whose cause is the original KafkaException.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException) and isinstance(seen.args[0], KafkaError):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    raise exc


def _state(state: State | None) -> State:
    assert state is not None  # a staged entry without a packed state has one
    return state
