"""Readiness during a large restore (docs/state.md, docs/design.md#interfaces): `/readyz` is 503
while the assigned partitions' state is read back from the changelog, 200 after, and `/healthz` is
200 all along.

The changelog is pre-filled directly with ~200k state records (`encode_state`, distinct keys,
written to explicit partitions as the processor does), so the restore takes long enough to be
seen from outside. After it, the store must hold every key, the restored-records counter must
equal what was produced, and the restored state must really be used: a change to a pre-filled
instance continues its version chain instead of creating it anew.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest

from processor.config import Settings
from processor.dev.synthetic import rfc3339_ms
from processor.http import HttpServer
from processor.state.codec import encode_state
from processor.state.model import State
from tests.http_client import call
from tests.kafka_helpers import Broker, Record, consume_all, create_topics, produce, wait_until
from tests.processes import ProcessorThread, Send, processor_fields, send, wait_consumed

UniqueName = Callable[[str], str]

PARTITIONS = 2
PER_PARTITION = 100_000
T0_MS = 1_767_261_600_000


def _key(partition: int, i: int) -> str:
    return f"svc-p{partition}-{i:06d}"


def _state(partition: int, i: int) -> State:
    key = _key(partition, i)
    return State(
        entity_type="service",
        version=1 + i % 7,
        hash=i.to_bytes(16, "big"),
        attr_names="id\x00href\x00name\x00state",
        attr_digests=(i * 31).to_bytes(8, "big") * 4,
        deleted=i % 10 == 0,
        observed_at=T0_MS + i,
        offset=-1,  # below any input offset: never "replayed"
        href=f"/tmf-api/serviceInventory/v4/service/{key}",
        at_type=None,
        last_event_id=f"0199aaaa-{partition:04x}-7{i % 4096:03x}-8000-{i:012x}",
        last_event_type="ServiceCreateEvent",
        last_event_time=rfc3339_ms(T0_MS + i),
        events=(),
    )


def _prefill(bootstrap: str, topic: str) -> int:
    """Write PER_PARTITION state records of distinct keys to each changelog partition."""
    total = 0
    for p in range(PARTITIONS):
        records = (
            (_key(p, i).encode(), encode_state(_state(p, i)), None, p) for i in range(PER_PARTITION)
        )
        total += len(
            produce(
                bootstrap,
                topic,
                records,
                config={
                    "linger.ms": 50,
                    "batch.size": 1_000_000,
                    "queue.buffering.max.messages": 500_000,
                    "compression.type": "lz4",
                },
                timeout=120,
            )
        )
    return total


@dataclass
class Probe:
    status: int | None
    detail: str


def _get(port: int, path: str) -> Probe:
    try:
        reply = call(port, path, timeout=5)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return Probe(None, str(exc))
    return Probe(reply.status, str(reply.json().get("detail", "")))


@pytest.fixture
def settings(noida_broker: Broker, unique_name: UniqueName) -> Settings:
    name = unique_name("ready")
    return Settings(**processor_fields(noida_broker.bootstrap_servers, name))


@pytest.fixture
def prefilled(settings: Settings) -> int:
    create_topics(settings.bootstrap_servers, {settings.input_topic: PARTITIONS})
    create_topics(
        settings.bootstrap_servers,
        {settings.changelog_topic: PARTITIONS},
        {"cleanup.policy": "compact"},
    )
    return _prefill(settings.bootstrap_servers, settings.changelog_topic)


@pytest.fixture
def running(settings: Settings, prefilled: int) -> Iterator[tuple[ProcessorThread, int]]:
    proc = ProcessorThread(settings)
    p = proc.processor
    http = HttpServer(0, p.metrics.registry, p.health, p.readiness, host="127.0.0.1").start()
    try:
        yield proc, http.port
    finally:
        try:
            if proc.thread.is_alive():
                proc.stop()
        finally:
            http.stop()


def test_readyz_is_503_while_restoring_and_200_after(
    settings: Settings, prefilled: int, running: tuple[ProcessorThread, int]
) -> None:
    proc, port = running
    assert prefilled == PARTITIONS * PER_PARTITION

    before = _get(port, "/readyz")
    assert before.status == 503  # not started: producer not initialised
    proc.start()

    seen: list[Probe] = []
    health_while_restoring: list[int | None] = []

    def ready() -> bool:
        probe = _get(port, "/readyz")
        if not seen or (seen[-1].status, seen[-1].detail) != (probe.status, probe.detail):
            seen.append(probe)
        if probe.status == 503 and "restoring" in probe.detail:
            health_while_restoring.append(_get(port, "/healthz").status)
        if not proc.alive:
            raise AssertionError(f"processor ended: {proc.error!r}")
        return probe.status == 200

    wait_until(ready, 120, interval=0.02, message=lambda: f"never ready; /readyz went {seen}")

    restoring = [s for s in seen if s.status == 503 and "restoring" in s.detail]
    assert restoring, f"never saw a 503 'restoring' answer before ready: {seen}"
    assert all(s.status == 503 for s in seen[:-1]), seen
    assert seen[-1].status == 200
    assert "assigned partitions [0, 1]" in seen[-1].detail
    # Liveness is not readiness: the loop turns (200) while it restores.
    assert health_while_restoring and set(health_while_restoring) == {200}

    p = proc.processor
    for partition in range(PARTITIONS):
        assert p.store.keys(partition) == PER_PARTITION, partition
    registry = p.metrics.registry
    assert registry.get_sample_value("tmf_events_restored_records_total") == prefilled
    assert registry.get_sample_value("tmf_events_restore_duration_seconds_count") == PARTITIONS
    # The gauge follows readiness at the end of each loop turn.
    wait_until(
        lambda: registry.get_sample_value("tmf_events_ready") == 1,
        10,
        message="tmf_events_ready never became 1",
    )
    for partition in range(PARTITIONS):
        keys = registry.get_sample_value("tmf_events_state_keys", {"partition": str(partition)})
        assert keys == PER_PARTITION
    # Restored values decode to exactly what was written.
    for partition in range(PARTITIONS):
        for i in (0, 1, 4_321, PER_PARTITION - 1):
            assert p.store.state(partition, _key(partition, i)) == _state(partition, i)
    assert p.store.get(0, _key(1, 5)) is None  # each partition has only its own keys

    health = _get(port, "/healthz")
    assert health.status == 200
    assert _get(port, "/readyz").status == 200


def test_restored_state_is_used_for_new_input(
    settings: Settings, prefilled: int, running: tuple[ProcessorThread, int]
) -> None:
    """A change to a pre-filled live instance continues its chain: no Create, version + 1,
    `ce_previousid` = the restored last event id; a pre-filled deleted one is created again
    with the next version (docs/design.md#deciding)."""
    proc, port = running
    proc.start()
    proc.wait_ready(120)
    live_i, deleted_i = 12_345, 20_000
    live, deleted = _state(1, live_i), _state(1, deleted_i)
    assert not live.deleted and deleted.deleted

    def upsert(i: int, at_ms: int) -> Send:
        key = _key(1, i)
        value = {
            "entityType": "service",
            "observedAt": rfc3339_ms(at_ms),
            "instance": {
                "id": key,
                "href": f"/tmf-api/serviceInventory/v4/service/{key}",
                "name": "Changed",
                "state": "active",
            },
        }
        return Send(key.encode(), orjson.dumps(value), None, partition=1)

    later = T0_MS + 10_000_000
    send(
        settings.bootstrap_servers,
        settings.input_topic,
        [upsert(live_i, later), upsert(deleted_i, later)],
    )
    wait_consumed(settings.bootstrap_servers, settings.app_id, settings.input_topic, {1: 2})
    events = consume_all(settings.bootstrap_servers, settings.service_topic, timeout=60)
    by_key: dict[str, list[Record]] = {}
    for record in sorted(events, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault((record.key or b"").decode(), []).append(record)
    assert set(by_key) == {_key(1, live_i), _key(1, deleted_i)}

    def name(record: Record) -> str:
        return (record.header("ce_type") or b"").decode().rsplit(".", 1)[-1]

    # Name and state changed: AttributeValueChange then StateChange, one version, chained.
    changed = by_key[_key(1, live_i)]
    assert [name(r) for r in changed] == [
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
    ]
    assert {r.header("ce_entityversion") for r in changed} == {str(live.version + 1).encode()}
    assert changed[0].header("ce_previousid") == (live.last_event_id or "").encode()
    assert changed[1].header("ce_previousid") == changed[0].header("ce_id")

    (recreated,) = by_key[_key(1, deleted_i)]
    assert name(recreated) == "ServiceCreateEvent"
    assert recreated.header("ce_entityversion") == str(deleted.version + 1).encode()
    assert recreated.header("ce_previousid") == (deleted.last_event_id or "").encode()
    assert _get(port, "/readyz").status == 200
    # Still exactly one key per pre-filled instance.
    wait_until(
        lambda: proc.processor.store.state(1, _key(1, live_i)) != live,
        30,
        message="the store never applied the committed change",
    )
    assert proc.processor.store.keys(1) == PER_PARTITION
