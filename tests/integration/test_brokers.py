"""The broker facts the product relies on (docs/testing.md#brokers-for-tests), checked on the real
brokers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from processor.dev.broker import BrokerNotInstalledError, EmbeddedBroker, free_port
from tests.kafka_helpers import (
    Broker,
    OutRecord,
    Record,
    consume_all,
    create_topics,
    produce,
    wait_until,
)

UniqueName = Callable[[str], str]


def _transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 10_000,
        }
    )
    producer.init_transactions(30)
    return producer


def _values(records: list[Record]) -> list[bytes | None]:
    return [r.value for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset))]


def _topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    (future,) = futures.values()
    entry = future.result(timeout=15).get(name)
    return None if entry is None else str(entry.value)


def test_fixtures_describe_the_broker(each_broker: Broker, unique_name: UniqueName) -> None:
    assert each_broker.kind in {"noida", "tansu", "external", "testcontainers"}
    metadata = AdminClient({"bootstrap.servers": each_broker.bootstrap_servers}).list_topics(
        timeout=10
    )
    assert metadata.brokers
    assert unique_name("t") != unique_name("t")


def test_records_and_headers_round_trip(each_broker: Broker, unique_name: UniqueName) -> None:
    bootstrap, topic = each_broker.bootstrap_servers, unique_name("round-trip")
    create_topics(bootstrap, {topic: 2})
    sent: list[OutRecord] = [
        (b"k1", b"v1", [("a", b"1"), ("a", b"2"), ("null", None)], 0),
        ("k2", "caf\u00e9", [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-01")], 1),
        (None, b"\x00\xff", None, 1),
        (b"gone", None, [("x", b"y")], 0),  # a tombstone
    ]
    delivered = produce(bootstrap, topic, sent)
    assert sorted(p for p, _ in delivered) == [0, 0, 1, 1]

    got = consume_all(bootstrap, topic, expected=4, timeout=20)

    assert sorted(((r.partition, r.key, r.value, r.headers) for r in got), key=repr) == sorted(
        [
            (0, b"k1", b"v1", [("a", b"1"), ("a", b"2"), ("null", None)]),
            (
                1,
                b"k2",
                "caf\u00e9".encode(),
                [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-01")],
            ),
            (1, None, b"\x00\xff", []),
            (0, b"gone", None, [("x", b"y")]),
        ],
        key=repr,
    )


def test_open_transaction_hidden_until_committed(
    each_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap, topic = each_broker.bootstrap_servers, unique_name("txn-open")
    create_topics(bootstrap, {topic: 1})
    producer = _transactional_producer(bootstrap, unique_name("txn-open"))
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"k", value=f"in-txn-{i}".encode())
    assert producer.flush(15) == 0

    # The records are on the broker (read_uncommitted sees them) ...
    assert (
        len(consume_all(bootstrap, topic, isolation="read_uncommitted", expected=3, timeout=20))
        == 3
    )
    # ... but a read_committed reader stops at the open transaction.
    assert consume_all(bootstrap, topic, timeout=20) == []

    producer.commit_transaction(30)
    committed = consume_all(bootstrap, topic, expected=3, timeout=20)
    assert _values(committed) == [b"in-txn-0", b"in-txn-1", b"in-txn-2"]


def test_aborted_transaction_and_read_committed(
    each_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap, topic = each_broker.bootstrap_servers, unique_name("txn-abort")
    create_topics(bootstrap, {topic: 1})
    producer = _transactional_producer(bootstrap, unique_name("txn-abort"))
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted-1")
    producer.produce(topic, value=b"aborted-2")
    assert producer.flush(15) == 0
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)

    # Everything before the committed record is decided once it is readable.
    def read() -> list[bytes | None]:
        values = _values(consume_all(bootstrap, topic, timeout=20))
        return values if b"committed" in values else []

    values = wait_until(read, 20, message="the committed record never became readable")
    if each_broker.hides_aborted_transactions:
        assert values == [b"committed"]
    else:
        # Tansu (docs/testing.md#brokers-for-tests): aborted records stay visible to read_committed
        # readers. If this starts failing, Tansu was fixed: update docs/testing.md#brokers-for-tests
        # and the tests that count copies there.
        assert values == [b"aborted-1", b"aborted-2", b"committed"]


def test_end_offsets(noida_broker: Broker, unique_name: UniqueName) -> None:
    # Restoring "up to the end offset" relies on these; Tansu answers ListOffsets wrongly
    # (docs/testing.md#brokers-for-tests), which is why consume_all goes by end-of-partition events
    # instead.
    bootstrap, topic = noida_broker.bootstrap_servers, unique_name("end-offsets")
    create_topics(bootstrap, {topic: 1})
    produce(bootstrap, topic, [(b"k", b"v", None, 0)] * 5, config={"linger.ms": 50})
    producer = _transactional_producer(bootstrap, unique_name("end-offsets"))
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=0)
    assert producer.flush(15) == 0

    def end_offsets(isolation: str) -> tuple[int, int]:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_name("g"),
                "isolation.level": isolation,
            }
        )
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), 15, False)
        finally:
            consumer.close()
        return low, high

    assert end_offsets("read_uncommitted") == (0, 6)  # high watermark
    assert end_offsets("read_committed") == (0, 5)  # last stable offset: before the open txn
    producer.commit_transaction(30)
    # The commit marker takes offset 6; Kafka writes markers asynchronously, hence the wait.
    wait_until(lambda: end_offsets("read_committed") == (0, 7), 20, message="LSO did not advance")


def test_compacted_topic_can_be_created(each_broker: Broker, unique_name: UniqueName) -> None:
    bootstrap, topic = each_broker.bootstrap_servers, unique_name("compacted")
    create_topics(bootstrap, {topic: 3}, {"cleanup.policy": "compact"})
    assert _topic_config(bootstrap, topic, "cleanup.policy") == "compact"


def test_compaction_keeps_the_latest_value_per_key(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    # Like Kafka, noida compacts closed segments only: a short segment.ms plus a later write rolls
    # the segment holding the old versions. Tansu never compacts
    # (docs/testing.md#brokers-for-tests).
    bootstrap, topic = noida_broker.bootstrap_servers, unique_name("compaction")
    config = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0",
    }
    create_topics(bootstrap, {topic: 1}, config)
    produce(bootstrap, topic, [(b"k", f"v{i}".encode(), None, 0) for i in range(5)])
    writes = iter(range(1_000_000))

    def compacted() -> bool:
        produce(bootstrap, topic, [(f"filler-{next(writes)}".encode(), b"", None, 0)])
        records = consume_all(bootstrap, topic, timeout=20)
        return [r.value for r in records if r.key == b"k"] == [b"v4"]

    wait_until(compacted, 60, interval=0.2, message="older versions of key k were not compacted")


def test_noida_restart_keeps_data(
    noida_private_broker: EmbeddedBroker, unique_name: UniqueName
) -> None:
    broker = noida_private_broker
    bootstrap = broker.bootstrap_servers
    topic, changelog, group = unique_name("data"), unique_name("changelog"), unique_name("group")
    create_topics(bootstrap, {topic: 2})
    create_topics(bootstrap, {changelog: 2}, {"cleanup.policy": "compact"})
    produce(bootstrap, topic, [(f"k{i}", f"v{i}", [("h", f"{i}")], i % 2) for i in range(6)])
    producer = _transactional_producer(bootstrap, unique_name("restart"))
    producer.begin_transaction()
    producer.produce(changelog, key=b"state", value=b"s1", partition=1)
    producer.commit_transaction(30)
    before = consume_all(bootstrap, [topic, changelog], expected=7, timeout=20)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    consumer.close()

    assert broker.restart() == bootstrap

    after = consume_all(bootstrap, [topic, changelog], timeout=20)
    assert sorted(after, key=repr) == sorted(before, key=repr)
    assert _topic_config(bootstrap, changelog, "cleanup.policy") == "compact"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=15)
    finally:
        consumer.close()
    assert committed.offset == 2


def test_noida_instances_are_isolated(
    noida_broker: Broker, noida_private_broker: EmbeddedBroker, unique_name: UniqueName
) -> None:
    topic = unique_name("isolated")
    create_topics(noida_private_broker.bootstrap_servers, {topic: 1})
    shared = AdminClient({"bootstrap.servers": noida_broker.bootstrap_servers})
    assert topic not in shared.list_topics(timeout=10).topics


def test_killed_broker_comes_back_on_its_port(noida_private_broker: EmbeddedBroker) -> None:
    broker = noida_private_broker
    bootstrap, pid = broker.bootstrap_servers, broker.pid
    assert pid is not None

    broker.kill()

    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left behind
    assert broker.start() == bootstrap
    assert "kafka" in broker.logs()
    assert "GLIBC" not in broker.logs()


def test_stop_ends_the_process_and_removes_the_temporary_dir() -> None:
    try:
        broker = EmbeddedBroker("tansu")
        with broker:
            pid, directory = broker.pid, broker.data_dir
            assert broker.running and pid is not None and directory is not None
            assert directory.is_dir()
    except BrokerNotInstalledError as exc:
        pytest.skip(str(exc))
    assert not broker.running
    assert not directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_run_foreground_stops_on_sigterm() -> None:
    port = free_port()
    code = (
        "from processor.dev.broker import run_foreground\n"
        f"raise SystemExit(run_foreground('tansu', {port}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any(f"127.0.0.1:{port}" in line for line in lines) or proc.poll() is not None,
            30,
            message="run_foreground did not report its address",
        )
        if any("not installed" in line for line in lines):
            pytest.skip(lines[-1])
        assert proc.poll() is None, "".join(lines)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        assert admin.list_topics(timeout=10).brokers

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    with socket.socket() as sock:  # the broker went with it
        assert sock.connect_ex(("127.0.0.1", port)) != 0
