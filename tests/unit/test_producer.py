"""The transactional producer's failure classification, without a broker.

A fake client stands in for confluent_kafka.Producer: each test scripts what its calls raise
and asserts what the wrapper makes of it — abort and redo the batch (`AbortBatch`), retry in
place, or never commit again (`FatalError`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from processor.messages import OutMessage
from processor.producer import AbortBatch, FatalError, TransactionalProducer, error_of

MESSAGE = OutMessage("t", None, b"k", b"v", [])
Failure = BaseException | Callable[["FakeClient"], object]


def kafka(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, f"error {code}", **flags))


class FakeClient:
    """Records calls; `fail[name]` holds what the next calls of `name` do instead."""

    def __init__(self, config: dict[str, Any], fail: dict[str, list[Failure]]) -> None:
        self.config = config
        self.fail = fail
        self.calls: list[str] = []
        self.produced: list[tuple[Any, ...]] = []
        self.unflushed = 0
        self.room: int | None = None  # how many messages the next produce_batch takes

    def _call(self, name: str) -> None:
        self.calls.append(name)
        queue = self.fail.get(name)
        if queue:
            failure = queue.pop(0)
            if isinstance(failure, BaseException):
                raise failure
            failure(self)

    def init_transactions(self, _timeout: float) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._call("produce")
        self.produced.append((*args, kwargs.get("headers")))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]]) -> int:
        self._call("produce_batch")
        room = self.room if self.room is not None else len(messages)
        for i, message in enumerate(messages):
            if i < room:
                self.produced.append((topic, message["partition"], message["key"]))
            else:
                message["_error"] = KafkaError(KafkaError._QUEUE_FULL, "queue full")
        self.room = None
        return min(room, len(messages))

    def poll(self, _timeout: float) -> int:
        self.calls.append("poll")
        return 0

    def flush(self, _timeout: float) -> int:
        self._call("flush")
        return self.unflushed

    def send_offsets_to_transaction(self, *_args: Any) -> None:
        self._call("send_offsets_to_transaction")

    def commit_transaction(self, _timeout: float) -> None:
        self._call("commit_transaction")

    def abort_transaction(self, _timeout: float) -> None:
        self._call("abort_transaction")

    def purge(self) -> None:
        self.calls.append("purge")


class Harness:
    def __init__(self, **fail: list[Failure]) -> None:
        self.fail: dict[str, list[Failure]] = {k: list(v) for k, v in fail.items()}
        self.clients: list[FakeClient] = []
        self.stop = threading.Event()
        self.beats = 0
        self.producer = TransactionalProducer(
            {"transactional.id": "app-1"}, stop=self.stop, beat=self._beat, factory=self._new
        )

    def _beat(self) -> None:
        self.beats += 1

    def _new(self, config: dict[str, Any]) -> FakeClient:
        client = FakeClient(config, self.fail)
        self.clients.append(client)
        return client

    @property
    def client(self) -> FakeClient:
        return self.clients[-1]

    def batch(self) -> None:
        p = self.producer
        p.begin()
        p.produce(MESSAGE)
        p.flush()
        p.commit([TopicPartition("in", 0, 5)], object())


def test_a_clean_batch_makes_the_calls_in_order() -> None:
    h = Harness()
    h.producer.init()
    h.batch()
    assert h.client.calls == [
        "init_transactions",
        "begin_transaction",
        "produce",
        "flush",
        "send_offsets_to_transaction",
        "commit_transaction",
    ]
    assert not h.producer.open
    assert h.client.config["transactional.id"] == "app-1"
    assert callable(h.client.config["on_delivery"])


def test_begin_happens_once_per_transaction() -> None:
    h = Harness()
    h.producer.begin()
    h.producer.begin()
    assert h.client.calls.count("begin_transaction") == 1


@pytest.mark.parametrize(
    "error",
    [
        kafka(KafkaError._TIMED_OUT, txn_requires_abort=True),
        kafka(KafkaError._TIMED_OUT, retriable=True),
    ],
    ids=["abortable", "retriable"],
)
@pytest.mark.parametrize("call", ["produce", "flush", "send_offsets_to_transaction"])
def test_abortable_and_retriable_errors_abort_the_batch(call: str, error: KafkaException) -> None:
    h = Harness(**{call: [error]})
    with pytest.raises(AbortBatch):
        h.batch()
    assert not h.producer.failed
    h.producer.abort()
    assert h.client.calls[-1] == "abort_transaction"
    assert not h.producer.open


@pytest.mark.parametrize(
    "error",
    [
        kafka(KafkaError._FENCED),
        kafka(KafkaError._FATAL),
        kafka(KafkaError.INVALID_PRODUCER_EPOCH, fatal=True),
        kafka(KafkaError.INVALID_CONFIG),  # neither abortable nor retriable
    ],
    ids=["fenced", "fatal-code", "fatal-flag", "other"],
)
@pytest.mark.parametrize("call", ["begin_transaction", "flush", "commit_transaction"])
def test_fenced_and_fatal_errors_end_the_replica(call: str, error: KafkaException) -> None:
    h = Harness(**{call: [error]})
    with pytest.raises(FatalError):
        h.batch()
    assert h.producer.failed
    assert "commit_transaction" not in h.client.calls or call == "commit_transaction"


def test_a_failed_producer_does_not_flush_on_close() -> None:
    h = Harness(begin_transaction=[kafka(KafkaError._FENCED)])
    with pytest.raises(FatalError):
        h.batch()
    calls = len(h.client.calls)
    h.producer.close()
    assert len(h.client.calls) == calls


def test_a_retriable_commit_is_retried_in_place() -> None:
    h = Harness(commit_transaction=[kafka(KafkaError._TIMED_OUT, retriable=True)] * 2)
    h.batch()
    assert h.client.calls.count("commit_transaction") == 3
    assert h.client.calls.count("abort_transaction") == 0
    assert h.beats >= 2  # waiting on the broker is not the loop being stuck


def test_a_commit_that_needs_an_abort_aborts() -> None:
    h = Harness(
        commit_transaction=[kafka(KafkaError._TIMED_OUT, retriable=True, txn_requires_abort=True)]
    )
    with pytest.raises(AbortBatch):
        h.batch()
    assert h.client.calls.count("commit_transaction") == 1


def test_a_failed_delivery_poisons_the_batch() -> None:
    def deliver_failure(client: FakeClient) -> None:
        client.config["on_delivery"](KafkaError(KafkaError._MSG_TIMED_OUT, "timed out"), None)

    h = Harness(flush=[deliver_failure])
    with pytest.raises(AbortBatch, match="delivery failed"):
        h.batch()
    assert "commit_transaction" not in h.client.calls
    h.producer.abort()
    h.batch()  # the error was consumed by the abort: the redo commits
    assert h.client.calls[-1] == "commit_transaction"


def test_a_fatal_delivery_error_ends_the_replica() -> None:
    def deliver_fatal(client: FakeClient) -> None:
        client.config["on_delivery"](KafkaError(KafkaError._FENCED, "fenced", fatal=True), None)

    h = Harness(flush=[deliver_fatal])
    with pytest.raises(FatalError, match="delivery failed"):
        h.batch()


def test_messages_left_unflushed_abort_the_batch() -> None:
    h = Harness()
    h.client.unflushed = 3
    with pytest.raises(AbortBatch, match="3 messages not delivered"):
        h.batch()


def test_a_state_error_in_an_open_transaction_aborts_it() -> None:
    h = Harness(flush=[kafka(KafkaError._STATE)])
    with pytest.raises(AbortBatch):
        h.batch()
    assert not h.producer.failed


def test_an_exception_raised_inside_a_callback_is_classified() -> None:
    # After a fencing the client raises from inside the delivery callback; the next call
    # surfaces it as a SystemError whose cause is the KafkaException.
    def system_error(_client: FakeClient) -> None:
        try:
            raise kafka(KafkaError._FENCED)
        except KafkaException as exc:
            raise SystemError("returned a result with an exception set") from exc

    h = Harness(flush=[system_error])
    with pytest.raises(FatalError, match="fenced"):
        h.batch()
    assert h.producer.failed


def _lost_exception(_client: FakeClient) -> None:
    raise SystemError("<method 'flush'> returned NULL without setting an exception")


def test_a_flush_that_lost_its_exception_after_a_fenced_delivery_ends_the_replica() -> None:
    # Seen on a broker: the fenced delivery reported, then flush failing with a bare
    # SystemError (no KafkaException behind it).
    def fenced_then_lost(client: FakeClient) -> None:
        client.config["on_delivery"](KafkaError(KafkaError._FENCED, "fenced", fatal=True), None)
        _lost_exception(client)

    h = Harness(flush=[fenced_then_lost])
    with pytest.raises(FatalError, match="fenced"):
        h.batch()
    assert h.producer.failed


def test_a_flush_that_lost_its_exception_aborts_the_batch() -> None:
    h = Harness(flush=[_lost_exception])
    with pytest.raises(AbortBatch, match="without a reason"):
        h.batch()
    assert not h.producer.failed


def test_a_full_local_queue_waits_for_deliveries() -> None:
    h = Harness(produce=[BufferError(), BufferError()])
    h.producer.produce(MESSAGE)
    assert h.client.calls == ["produce", "poll", "produce", "poll", "produce"]
    assert len(h.client.produced) == 1


def test_a_batch_the_local_queue_cannot_take_at_once_is_retried_after_a_poll() -> None:
    h = Harness()
    h.client.room = 2
    messages = [{"partition": i % 2, "key": f"k{i}".encode(), "value": b"v"} for i in range(5)]
    h.producer.produce_batch("changelog", messages)
    assert h.client.calls == ["produce_batch", "poll", "produce_batch"]
    assert [key for _, _, key in h.client.produced] == [f"k{i}".encode() for i in range(5)]
    assert not any("_error" in m for m in messages)


def test_a_batch_refused_for_another_reason_is_classified() -> None:
    h = Harness()

    def refuse(client: FakeClient) -> None:
        raise kafka(KafkaError._FENCED)

    h.fail["produce_batch"] = [refuse]
    with pytest.raises(FatalError):
        h.producer.produce_batch("changelog", [{"partition": 0, "key": b"k", "value": b"v"}])


def test_an_abort_the_broker_does_not_answer_starts_a_new_client() -> None:
    h = Harness(abort_transaction=[kafka(KafkaError._TIMED_OUT, retriable=True)])
    h.producer.begin()
    first = h.client
    h.producer.abort()
    assert len(h.clients) == 2
    assert first.calls[-1] == "purge"
    assert h.client.calls == ["init_transactions"]  # the new one fences the old
    assert not h.producer.open


def test_a_fatal_abort_ends_the_replica() -> None:
    h = Harness(abort_transaction=[kafka(KafkaError._FENCED)])
    h.producer.begin()
    with pytest.raises(FatalError, match="abort failed"):
        h.producer.abort()


def test_init_retries_while_the_broker_is_away() -> None:
    # Each retry waits on the stop event: set by the second attempt, so the test never sleeps
    # on a timer; the first failure's wait returns because the event is already set then.
    def away(_client: FakeClient) -> None:
        raise kafka(KafkaError._TRANSPORT, retriable=True)

    h = Harness(init_transactions=[away])
    h.stop.set()
    with pytest.raises(FatalError, match="stopped before the producer was ready"):
        h.producer.init()
    h.stop.clear()
    h.fail["init_transactions"] = [kafka(KafkaError._TRANSPORT, retriable=True)]
    waits: list[float] = []
    h.producer.stop = _RecordingEvent(waits)
    h.producer.init()
    assert waits == [1.0]
    assert h.client.calls.count("init_transactions") == 3


class _RecordingEvent(threading.Event):
    """A stop event whose waits return at once and are recorded (no timers in tests)."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


def test_error_of_finds_the_kafka_error_behind_a_system_error() -> None:
    try:
        try:
            raise kafka(KafkaError._FENCED)
        except KafkaException as exc:
            raise SystemError("returned a result with an exception set") from exc
    except SystemError as outer:
        assert error_of(outer).code() == KafkaError._FENCED


def test_error_of_does_not_swallow_unrelated_errors() -> None:
    with pytest.raises(SystemError, match="unrelated"):
        error_of(SystemError("unrelated"))
