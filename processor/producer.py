"""The transactional producer and the classification of its failures.

Every transactional call goes through `TransactionalProducer`, which turns what the client
raises into one of two outcomes for the loop (docs/runtime.md#transaction-errors):

- `AbortBatch`: the open transaction cannot commit (an abortable error, a failed or
  timed-out delivery, a retriable error): abort it, drop the batch's staged state, rewind
  the input and do the batch again;
- `FatalError`: the producer is fenced by a newer replica with the same transactional.id,
  or hit a fatal error: it never commits again and the replica exits 3 to be restarted.

A commit that fails with a retriable error and needs no abort is retried in place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from processor.messages import OutMessage

log = logging.getLogger(__name__)

TXN_TIMEOUT_S = 30.0  # bound of every client call; the broker-side timeout is separate


class AbortBatch(Exception):  # noqa: N818 - an instruction to the loop, not a failure of it
    """The open transaction cannot commit: abort it and process the batch again."""


class FatalError(Exception):
    """The producer was fenced or hit a fatal error: exit non-zero, let the orchestrator
    restart the replica."""


class TransactionalProducer:
    """Begin / produce / flush / offsets / commit / abort, each failure classified.

    `factory` makes the client (tests pass a fake they control); `beat` is called while
    waiting for the broker, which is not the loop being stuck; `stop` ends such waits.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        stop: threading.Event | None = None,
        beat: Callable[[], None] = lambda: None,
        factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self.config = config
        self.stop = stop if stop is not None else threading.Event()
        self.beat = beat
        self.factory = factory
        self.open = False  # a transaction has begun
        self.failed = False  # fenced or fatal: never commit again
        self.delivery_error: KafkaError | None = None
        self.client = self._new_client()

    def _new_client(self) -> Any:
        conf = dict(self.config)
        conf["on_delivery"] = self._on_delivery
        return self.factory(conf)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        # A delivery that failed (e.g. timed out during a broker outage) poisons the
        # transaction: the batch must be aborted, never committed.
        if err is not None and self.delivery_error is None:
            self.delivery_error = err

    # -- the transaction ------------------------------------------------------------------
    def init(self) -> None:
        """Fence any predecessor with our transactional.id and abort its open transaction.

        Retried while the broker is unreachable (a replica may start before Kafka does);
        a fatal error, or a stop while waiting, ends the run.
        """
        delay = 1.0
        while True:
            self.beat()
            try:
                self._call(lambda p: p.init_transactions(TXN_TIMEOUT_S))
                return
            except AbortBatch as exc:
                if self.stop.is_set():
                    raise FatalError(f"stopped before the producer was ready: {exc}") from exc
                log.warning("init_transactions: %s; retrying in %.0f s", exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def begin(self) -> None:
        if not self.open:
            self._call(lambda p: p.begin_transaction())
            self.open = True

    def produce(self, message: OutMessage) -> None:
        topic, partition, key, value, headers = message
        client = self.client
        while True:
            try:
                if partition is None:
                    client.produce(topic, value, key, headers=headers)
                else:
                    client.produce(topic, value, key, partition, headers=headers)
                return
            except BufferError:
                client.poll(0.05)  # local queue full: let deliveries drain
            except (KafkaException, SystemError) as exc:
                self._raise_for(error_of(exc))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]]) -> None:
        """Header-less messages (the changelog writes) in one client call each round; what the
        local queue could not take is retried once deliveries have drained."""
        pending = messages
        while pending:
            try:
                queued = self.client.produce_batch(topic, pending)
            except (KafkaException, SystemError) as exc:
                self._raise_for(error_of(exc))
            if queued == len(pending):
                return
            refused = [m for m in pending if "_error" in m]
            for message in refused:
                err: KafkaError = message.pop("_error")
                if err.code() != KafkaError._QUEUE_FULL:
                    self._raise_for(err)
            self.client.poll(0.05)
            pending = refused

    def flush(self) -> None:
        """Wait until the broker has acknowledged everything produced."""
        try:
            remaining = self.client.flush(TXN_TIMEOUT_S)
        except KafkaException as exc:
            self._raise_for(error_of(exc))
        except SystemError as exc:  # after a fencing: from a callback
            if _kafka_error_in(exc) is not None:
                self._raise_for(error_of(exc))
            # The client lost the callback's exception ("returned NULL without setting an
            # exception"): what the deliveries said decides, else the abort will tell.
            remaining = -1
        failed, self.delivery_error = self.delivery_error, None
        if failed is not None:
            if _fatal(failed):
                self.fail(f"delivery failed: {failed.str()}")
            raise AbortBatch(f"delivery failed: {failed.str()}")
        if remaining < 0:
            raise AbortBatch("flush failed without a reason from the client")
        if remaining:
            raise AbortBatch(f"{remaining} messages not delivered within {TXN_TIMEOUT_S} s")

    def commit(self, offsets: Sequence[TopicPartition], group_metadata: Any) -> None:
        """The input offsets into the transaction, then commit it."""
        self._call(
            lambda p: p.send_offsets_to_transaction(list(offsets), group_metadata, TXN_TIMEOUT_S)
        )
        while True:
            try:
                self.client.commit_transaction(TXN_TIMEOUT_S)
                break
            except (KafkaException, SystemError) as exc:
                err = error_of(exc)
                if err.retriable() and not err.txn_requires_abort() and not err.fatal():
                    log.warning("commit retry: %s", err.str())
                    self.beat()
                    continue
                self._raise_for(err)
        self.open = False

    def abort(self) -> None:
        """Abort the open transaction; where the broker does not answer, a fresh client with
        the same transactional.id fences this one and aborts it, as a restart would."""
        self.open = False
        self.delivery_error = None
        try:
            self.client.abort_transaction(TXN_TIMEOUT_S)
        except (KafkaException, SystemError) as exc:
            err = error_of(exc)
            if _fatal(err):
                self.fail(f"abort failed: {err.str()}")
            log.warning("abort did not complete (%s); starting a new producer", err.str())
            self.client.purge()
            self.client = self._new_client()
            self.init()

    def close(self, timeout: float = 5) -> None:
        if not self.failed:
            self.client.flush(timeout)

    # -- classification -------------------------------------------------------------------
    def _call(self, fn: Callable[[Any], object]) -> None:
        try:
            fn(self.client)
        except (KafkaException, SystemError) as exc:
            self._raise_for(error_of(exc))

    def _raise_for(self, err: KafkaError) -> NoReturn:
        if _fatal(err):
            self.fail(f"producer fatal error (fenced?): {err.str()}")
        if err.txn_requires_abort():
            raise AbortBatch(err.str())
        if err.code() == KafkaError._STATE and self.open:
            # The transaction went bad underneath us (e.g. timed-out deliveries).
            raise AbortBatch(err.str())
        if err.retriable():
            raise AbortBatch(f"retriable: {err.str()}")
        self.fail(f"producer error: {err.str()}")

    def fail(self, message: str) -> NoReturn:
        """Never commit again; end the run with FatalError (exit 3)."""
        self.failed = True
        raise FatalError(message)


def _fatal(err: KafkaError) -> bool:
    # A static member fenced by its twin arrives as _FATAL without the fatal flag.
    return bool(err.fatal()) or err.code() in (KafkaError._FATAL, KafkaError._FENCED)


def error_of(exc: BaseException) -> KafkaError:
    """The KafkaError behind a client call's failure.

    When a callback run by flush/poll raises (the client does so itself on a fatal error),
    the next callback returns with that exception still set and CPython reports it as a
    SystemError whose cause is the original KafkaException.
    """
    err = _kafka_error_in(exc)
    if err is None:
        raise exc
    return err


def _kafka_error_in(exc: BaseException) -> KafkaError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException) and isinstance(seen.args[0], KafkaError):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    return None
