"""The transactional processor (`processor.loop.Processor`) on real brokers (docs/state.md,
docs/runtime.md#exactly-once).

Each test runs the processor in a thread of the test process, on topics and an app id of its
own, and compares what lands on the output topics with what `processor.replay.replay` says
for the very same input records (read back from the input topic, so partition, offset,
timestamp, key and headers are exactly what the processor saw).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from processor import native
from processor.config import Settings
from processor.dev.synthetic import Generator, Mix, rfc3339_ms
from processor.loop import Processor
from processor.records import InputRecord
from tests.kafka_helpers import Broker, Record, consume_all, create_topics, wait_until
from tests.processes import (
    ProcessorThread,
    Send,
    committed_offsets,
    end_offsets,
    expected,
    processor_fields,
    read_input,
    send,
    wait_consumed,
)
from tests.schema_check import assert_valid_event, event_headers

UniqueName = Callable[[str], str]

ERROR = "tmf-events-error"
ADDED_DLQ_HEADERS = (
    "tmf-events-error",
    "tmf-events-error-message",
    "tmf-events-source-topic",
    "tmf-events-source-partition",
    "tmf-events-source-offset",
)


def _now_ms() -> int:
    # Record timestamps near now: older ones could fall out of the topic's retention.
    return int(time.time() * 1000) - 3_600_000


def synthetic(count: int, *, seed: int, keys: int, start_ms: int) -> list[Send]:
    """Seeded change records (creates, updates, state changes, no-ops, deletes, tombstones);
    every seventh carries a `traceparent` header."""
    gen = Generator(seed=seed, keys=keys, mix=Mix(), start_ms=start_ms, step_ms=1)
    out: list[Send] = []
    for i, rec in enumerate(gen.records(count)):
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 7 == 3:
            headers = (("traceparent", f"00-{i + 1:032x}-{i + 1:016x}-01".encode()),)
        out.append(Send(rec.key, rec.value, rec.timestamp_ms, headers))
    return out


def _service_key(records: Sequence[Send]) -> bytes:
    """The key of the first service instance the records create."""
    for r in records:
        if r.value is not None and orjson.loads(r.value).get("entityType") == "service":
            return r.key or b""
    raise AssertionError("no service record")


def _events(records: Sequence[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def _header(record: Record, name: str) -> str:
    value = record.header(name)
    assert value is not None, f"{record.topic}@{record.offset} has no {name} header"
    return value.decode()


def _read_outputs(settings: Settings, *, dlq: bool = True) -> list[Record]:
    topics = [settings.service_topic, settings.resource_topic]
    if dlq:
        topics.append(settings.dlq_topic)
    return _events(consume_all(settings.bootstrap_servers, topics, timeout=60))


def _run_to_end(settings: Settings, inputs: Sequence[InputRecord]) -> Processor:
    """Run a processor until its group committed every input record, then stop it cleanly."""
    with ProcessorThread(settings) as proc:
        wait_consumed(
            settings.bootstrap_servers, settings.app_id, settings.input_topic, end_offsets(inputs)
        )
        assert proc.alive
    assert proc.result == 0
    return proc.processor


# -- 1. replay equality ------------------------------------------------------------------------


def _bad_but_replayable(service_key: bytes) -> list[Send]:
    """Bad input the replay format can express (raw lines are keyless and header-less)."""
    key = service_key.decode()
    instance = {"id": key, "href": f"/x/{key}", "@type": "Service", "state": "active"}
    return [
        Send(None, b"not json at all"),  # invalid_json (raw line)
        Send(None, b'{"entityType": "service", "note": "caf\xe9"}'),  # invalid_utf8 (raw line)
        Send(None, b"[1,2,3]"),  # missing_key (raw line: valid JSON, not an object)
        Send(b"gadget-1", orjson.dumps({"entityType": "gadget", "instance": {"id": "gadget-1"}})),
        Send(b"svc-x", orjson.dumps({"entityType": 5}), headers=(("origin", b"test"),)),
        Send(b"svc-y", orjson.dumps({"entityType": "service", "instance": {"id": "svc-z"}})),
        Send(b"svc-y", orjson.dumps({"entityType": "service", "operation": "upsert"})),
        Send(
            b"svc-y",
            orjson.dumps(
                {"entityType": "service", "observedAt": "yesterday", "instance": {"id": "svc-y"}}
            ),
        ),
        # entity_type_mismatch: this key is a service in the synthetic load
        Send(service_key, orjson.dumps({"entityType": "resource", "instance": instance})),
        Send(b"never-created", None),  # a tombstone of an unknown key: nothing at all
    ]


def test_output_equals_replay_byte_for_byte(noida_broker: Broker, unique_name: UniqueName) -> None:
    bootstrap = noida_broker.bootstrap_servers
    settings = Settings(**processor_fields(bootstrap, unique_name("replay-eq")))
    create_topics(bootstrap, {settings.input_topic: 1})
    good = synthetic(2000, seed=11, keys=150, start_ms=_now_ms())
    bad = _bad_but_replayable(_service_key(good))
    records = list(good)
    for i, bad_record in enumerate(bad):  # spread the bad ones through the load
        records.insert(150 + i * 180, bad_record)
    send(bootstrap, settings.input_topic, records)
    inputs = read_input(bootstrap, settings.input_topic)
    assert len(inputs) == len(records)
    assert sum(r.value is None for r in inputs) > 10  # tombstones
    want = expected(inputs, settings)

    processor = _run_to_end(settings, inputs)
    by_path = {
        path: processor.metrics.registry.get_sample_value(
            "tmf_events_core_records_total", {"path": path}
        )
        for path in ("c", "python")
    }
    assert by_path["c"] is not None and by_path["python"] is not None
    assert by_path["c"] + by_path["python"] == len(inputs)
    if native.AVAILABLE:  # the loop's C (batch) path against replay's Python path
        assert by_path["c"] > len(inputs) * 0.9, by_path
    else:
        assert by_path["c"] == 0

    got = _read_outputs(settings)
    by_topic: dict[str, list[Record]] = defaultdict(list)
    for record in got:
        by_topic[record.topic].append(record)
    want_by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in want:
        want_by_topic[message["topic"]].append(message)
    assert sorted(by_topic) == sorted(want_by_topic)
    assert settings.dlq_topic in want_by_topic
    for topic, messages in want_by_topic.items():
        records_of_topic = by_topic[topic]
        assert len(records_of_topic) == len(messages), topic
        dlq = topic == settings.dlq_topic
        for record, message in zip(records_of_topic, messages, strict=True):
            where = f"{topic}@{record.offset}"
            assert (None if record.key is None else record.key.decode()) == message["key"], where
            assert [
                (k, None if v is None else v.decode("utf-8", "replace")) for k, v in record.headers
            ] == list(message["headers"].items()), where
            if dlq:
                assert record.value is not None
                assert record.value.decode("utf-8", "replace") == message["value"], where
                assert record.partition == message["partition"], where
            else:
                assert record.value == orjson.dumps(message["value"]), where
                assert_valid_event((record.headers, record.value))
    reasons = Counter(_header(r, ERROR) for r in by_topic[settings.dlq_topic])
    assert reasons == {
        "invalid_json": 1,
        "invalid_utf8": 1,
        "missing_key": 1,
        "unknown_entity_type": 1,
        "schema_violation": 1,
        "id_mismatch": 1,
        "missing_instance": 1,
        "invalid_timestamp": 1,
        "entity_type_mismatch": 1,
    }
    kinds = Counter(
        _header(r, "ce_type").rsplit(".", 1)[-1] for r in got if r.topic != settings.dlq_topic
    )
    assert {"ServiceCreateEvent", "ResourceDeleteEvent", "ServiceStateChangeEvent"} <= set(kinds)


# -- 2. restart: state restored from the changelog ---------------------------------------------


def _last_events(events: Sequence[Record]) -> dict[str, Record]:
    """The latest event per subject (a subject's events share one partition: offset order)."""
    last: dict[str, Record] = {}
    for record in sorted(events, key=lambda r: (r.topic, r.partition, r.offset)):
        subject = _header(record, "ce_subject")
        held = last.get(subject)
        if held is not None:
            assert int(_header(record, "ce_entityversion")) >= int(
                _header(held, "ce_entityversion")
            ), subject
        last[subject] = record
    return last


def _changed(value: bytes, observed_ms: int, suffix: str) -> bytes:
    obj = orjson.loads(value)
    obj["observedAt"] = rfc3339_ms(observed_ms)
    obj["operation"] = "upsert"
    obj["instance"]["name"] = f"{obj['instance']['name']} {suffix}"
    return orjson.dumps(obj)


def _at(value: bytes, observed_ms: int) -> bytes:
    obj = orjson.loads(value)
    obj["observedAt"] = rfc3339_ms(observed_ms)
    obj["operation"] = "upsert"
    return orjson.dumps(obj)


def test_restart_restores_state_and_continues_the_chain(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("restart"))
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 2})
    start_ms = _now_ms()
    first = synthetic(800, seed=22, keys=60, start_ms=start_ms)
    send(bootstrap, settings.input_topic, first)
    inputs = read_input(bootstrap, settings.input_topic)
    _run_to_end(settings, inputs)
    before = _read_outputs(settings, dlq=False)
    assert before, "the first run emitted nothing"
    last = _last_events(before)
    last_upsert: dict[bytes, bytes] = {}
    for r in first:
        if r.value is not None and orjson.loads(r.value).get("operation", "upsert") == "upsert":
            last_upsert[r.key or b""] = r.value
    live = sorted(s for s, e in last.items() if not _header(e, "ce_type").endswith("DeleteEvent"))
    deleted = sorted(s for s, e in last.items() if _header(e, "ce_type").endswith("DeleteEvent"))
    assert len(live) >= 20 and deleted, (len(live), len(deleted))
    same, changed, recreated = live[:10], live[10:20], deleted[:3]

    later = start_ms + 10_000_000
    second = (
        # the last content of each key again, at a new offset: nothing changed, nothing emitted
        [Send(k.encode(), last_upsert[k.encode()], later) for k in same]
        + [
            Send(k.encode(), _changed(last_upsert[k.encode()], later, "(moved)"), later)
            for k in changed
        ]
        + [Send(k.encode(), _at(last_upsert[k.encode()], later), later) for k in recreated]
    )
    with ProcessorThread(settings) as proc:
        proc.wait_ready()
        send(bootstrap, settings.input_topic, second)
        all_inputs = read_input(bootstrap, settings.input_topic)
        assert len(all_inputs) == len(first) + len(second)
        wait_consumed(bootstrap, settings.app_id, settings.input_topic, end_offsets(all_inputs))
        restored = proc.processor.metrics.registry.get_sample_value(
            "tmf_events_restored_records_total"
        )
    assert restored, "the second processor restored nothing from the changelog"

    after = _read_outputs(settings, dlq=False)
    known = {_header(r, "ce_id") for r in before}
    new = [r for r in after if _header(r, "ce_id") not in known]
    assert len(after) == len(before) + len(new)
    by_subject = {_header(r, "ce_subject"): r for r in new}
    assert len(by_subject) == len(new), "more than one new event for a subject"
    assert sorted(by_subject) == sorted(changed + recreated)
    for subject, event in by_subject.items():
        previous = last[subject]
        assert int(_header(event, "ce_entityversion")) == (
            int(_header(previous, "ce_entityversion")) + 1
        ), subject
        assert _header(event, "ce_previousid") == _header(previous, "ce_id"), subject
        name = _header(event, "ce_type").rsplit(".", 1)[-1]
        if subject in changed:
            assert name.endswith("AttributeValueChangeEvent"), (subject, name)
        else:
            assert name.endswith("CreateEvent"), (subject, name)
    for record in after:
        assert_valid_event((record.headers, record.value))
    # Restarting changed nothing: the whole output is what one replay of all input gives.
    want = {m["headers"]["ce_id"] for m in expected(all_inputs, settings)}
    assert Counter(_header(r, "ce_id") for r in after) == Counter(want)


# -- 3. two replicas in one group --------------------------------------------------------------


def _consumed(proc: ProcessorThread) -> int:
    samples = [s for m in proc.processor.metrics.consumed.collect() for s in m.samples]
    return int(sum(s.value for s in samples if s.name.endswith("_total")))


def test_two_replicas_split_the_partitions_and_match_one(
    each_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap = each_broker.bootstrap_servers
    group = processor_fields(bootstrap, unique_name("pair"))
    create_topics(bootstrap, {group["input_topic"]: 4})
    a = ProcessorThread({**group, "instance_id": "replica-a"}).start()
    b = ProcessorThread({**group, "instance_id": "replica-b"}).start()
    try:
        a.wait_ready(90)
        b.wait_ready(90)
        # Both members hold partitions before any input exists, so both get work.
        wait_until(
            lambda: (
                a.processor.assigned
                and b.processor.assigned
                and not (a.processor.assigned & b.processor.assigned)
                and a.processor.assigned | b.processor.assigned == {0, 1, 2, 3}
            ),
            60,
            message=lambda: f"assignments {a.processor.assigned} / {b.processor.assigned}",
        )
        send(
            bootstrap,
            group["input_topic"],
            synthetic(2000, seed=33, keys=400, start_ms=_now_ms()),
        )
        inputs = read_input(bootstrap, group["input_topic"])
        wait_consumed(bootstrap, group["app_id"], group["input_topic"], end_offsets(inputs))
        assert a.alive and b.alive
        split = (_consumed(a), _consumed(b))
    finally:
        codes = (a.stop(), b.stop())
    assert codes == (0, 0)
    assert all(split) and sum(split) == len(inputs), split

    # One replica, its own group, changelog and outputs, the same input topic.
    single = processor_fields(bootstrap, unique_name("single"), input_topic=group["input_topic"])
    _run_to_end(Settings(**single), inputs)

    def output(fields: dict[str, Any]) -> set[tuple[str, bytes | None]]:
        records = _read_outputs(Settings(**fields), dlq=False)
        for r in records:
            assert_valid_event((r.headers, r.value))
        return {(_header(r, "ce_id"), r.value) for r in records}

    pair, one = output(group), output(single)
    assert pair == one
    want = expected(inputs, Settings(**single))
    assert {i for i, _ in one} == {m["headers"]["ce_id"] for m in want}


# -- 4. bad records interleaved with good ones -------------------------------------------------


def _deep(depth: int) -> Any:
    node: Any = {"leaf": 1}
    for _ in range(depth):
        node = {"child": node}
    return node


def _bad_records(service_key: bytes) -> list[tuple[str, str, Send]]:
    """(case, expected reason, record); every record names its case in a header."""
    key = service_key.decode()

    def svc(rid: str, **extra: Any) -> dict[str, Any]:
        return {"id": rid, "href": f"/svc/{rid}", "@type": "Service", "state": "active", **extra}

    cases: list[tuple[str, str, bytes | None, bytes | None]] = [
        ("json", "invalid_json", b"bad-json", b'{"entityType": "service",'),
        ("utf8-value", "invalid_utf8", b"bad-utf8", b'{"entityType": "service", "x": "\xff"}'),
        (
            "utf8-key",
            "invalid_utf8",
            b"\xff\xfekey",
            orjson.dumps({"entityType": "service", "instance": svc("k")}),
        ),
        ("not-object", "schema_violation", b"arr", b"[1, 2, 3]"),
        ("wrong-type", "schema_violation", b"svc-t", orjson.dumps({"entityType": 5})),
        (
            "operation",
            "schema_violation",
            b"svc-o",
            orjson.dumps({"entityType": "service", "operation": "merge", "instance": svc("svc-o")}),
        ),
        (
            "extra-member",
            "schema_violation",
            b"svc-e",
            orjson.dumps({"entityType": "service", "instance": svc("svc-e"), "colour": "red"}),
        ),
        (
            "keyless",
            "missing_key",
            None,
            orjson.dumps({"entityType": "service", "instance": svc("svc-k")}),
        ),
        ("keyless-tombstone", "missing_key", None, None),
        (
            "id",
            "id_mismatch",
            b"svc-1",
            orjson.dumps({"entityType": "service", "instance": svc("svc-2")}),
        ),
        (
            "envelope-id",
            "id_mismatch",
            b"svc-3",
            orjson.dumps({"entityType": "service", "id": "svc-4", "instance": svc("svc-3")}),
        ),
        ("instance", "missing_instance", b"svc-5", orjson.dumps({"entityType": "service"})),
        (
            "type",
            "unknown_entity_type",
            b"thing-1",
            orjson.dumps({"entityType": "product", "instance": svc("thing-1")}),
        ),
        (
            "time",
            "invalid_timestamp",
            b"svc-6",
            orjson.dumps(
                {"entityType": "service", "observedAt": "2026-13-45", "instance": svc("svc-6")}
            ),
        ),
        (
            "large",
            "too_large",
            b"svc-7",
            orjson.dumps(
                {"entityType": "service", "instance": svc("svc-7", description="x" * 5000)}
            ),
        ),
        (
            "deep",
            "too_deep",
            b"svc-8",
            orjson.dumps({"entityType": "service", "instance": svc("svc-8", nested=_deep(80))}),
        ),
        (
            "mismatch",
            "entity_type_mismatch",
            service_key,
            orjson.dumps(
                {
                    "entityType": "resource",
                    "instance": {"id": key, "href": f"/res/{key}", "@type": "Resource"},
                }
            ),
        ),
    ]
    return [
        (
            case,
            reason,
            Send(k, v, headers=(("test-case", case.encode()), ("x-origin", b"bad-input"))),
        )
        for case, reason, k, v in cases
    ]


def test_bad_records_go_to_the_dlq_and_the_rest_is_processed(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    settings = Settings(**processor_fields(bootstrap, unique_name("bad"), max_record_bytes=4096))
    create_topics(bootstrap, {settings.input_topic: 2})
    good = synthetic(1200, seed=44, keys=120, start_ms=_now_ms())
    bad = _bad_records(_service_key(good))
    records = list(good)
    for i, (_case, _reason, bad_record) in enumerate(bad):
        records.insert(100 + i * 60, bad_record)  # the mismatch comes last, after its create
    assert len(set(reason for _, reason, _ in bad)) == 11  # every reason Kafka input can give

    with ProcessorThread(settings) as proc:
        proc.wait_ready()
        send(bootstrap, settings.input_topic, records)
        inputs = read_input(bootstrap, settings.input_topic)
        assert len(inputs) == len(records)
        wait_consumed(bootstrap, settings.app_id, settings.input_topic, end_offsets(inputs))
        # Bad input never stops the processor.
        assert proc.alive and proc.ready(), proc.processor.readiness()

    def case_of(record: InputRecord | Record) -> str | None:
        values = [v for k, v in record.headers if k == "test-case"]
        return values[0].decode() if values and values[0] is not None else None

    sources = {case_of(r): r for r in inputs if case_of(r) is not None}
    assert len(sources) == len(bad)
    out = _read_outputs(settings)
    dead = {case_of(r): r for r in out if r.topic == settings.dlq_topic}
    assert len([r for r in out if r.topic == settings.dlq_topic]) == len(bad)
    assert sorted(dead, key=str) == sorted(sources, key=str)
    for case, reason, _ in bad:
        letter, source = dead[case], sources[case]
        assert letter.header(ERROR) == reason.encode(), (case, letter.headers)
        assert letter.key == source.key, case
        assert letter.value == source.value, case  # the original bytes
        assert letter.partition == source.partition, case
        assert letter.headers[: len(source.headers)] == source.headers, case
        added = letter.headers[len(source.headers) :]
        assert [k for k, _ in added] == list(ADDED_DLQ_HEADERS), case
        assert letter.header("tmf-events-source-topic") == settings.input_topic.encode()
        assert letter.header("tmf-events-source-partition") == str(source.partition).encode()
        assert letter.header("tmf-events-source-offset") == str(source.offset).encode()
        assert letter.header("tmf-events-error-message"), case

    # Every good record was processed exactly as replay processes the good records alone
    # (dead letters change no state; event ids depend on the real offsets, which replay keeps).
    good_inputs = [r for r in inputs if case_of(r) is None]
    want = [m for m in expected(good_inputs, settings) if m["topic"] != settings.dlq_topic]
    events = [r for r in out if r.topic != settings.dlq_topic]
    assert len(want) > 500
    assert {(_header(r, "ce_id"), r.value) for r in events} == {
        (m["headers"]["ce_id"], orjson.dumps(m["value"])) for m in want
    }
    assert len(events) == len(want)
    for record in events:
        assert_valid_event((record.headers, record.value))
        assert event_headers(record.headers)["ce_source"] == settings.source


# -- a state too large for one Kafka message ---------------------------------------------------


def test_a_state_too_large_for_one_message_does_not_stop_the_processor(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    # history=4 keeps the last four events (full payloads) in each state record: four
    # ~300 KB updates of one instance make a ~1.2 MB changelog record, over Kafka's limits,
    # from input records far below max_record_bytes (1 MiB).
    bootstrap = noida_broker.bootstrap_servers
    settings = Settings(**processor_fields(bootstrap, unique_name("wide"), history=4))
    create_topics(bootstrap, {settings.input_topic: 1})
    start_ms = _now_ms()

    def upsert(key: str, i: int, size: int) -> Send:
        instance = {
            "id": key,
            "href": f"/svc/{key}",
            "@type": "Service",
            "state": "active",
            "description": f"revision {i} " + "x" * size,
        }
        value = {
            "entityType": "service",
            "observedAt": rfc3339_ms(start_ms + i),
            "instance": instance,
        }
        return Send(key.encode(), orjson.dumps(value), start_ms + i)

    wide = [upsert("svc-wide", i, 300_000) for i in range(5)]
    records = [*wide, upsert("svc-after", 10, 10)]

    with ProcessorThread(settings) as proc:
        proc.wait_ready()
        send(bootstrap, settings.input_topic, records)
        inputs = read_input(bootstrap, settings.input_topic)
        ends = end_offsets(inputs)
        wait_until(
            lambda: (
                not proc.alive
                or committed_offsets(bootstrap, settings.app_id, settings.input_topic, ends) == ends
            ),
            60,
            message="the input was not consumed",
        )
        assert proc.alive and proc.ready(), f"the processor stopped: {proc.error!r}"

    out = _read_outputs(settings)
    events = [r for r in out if r.topic != settings.dlq_topic]
    dead = [r for r in out if r.topic == settings.dlq_topic]
    after = [r for r in events if _header(r, "ce_subject") == "svc-after"]
    assert [_header(r, "ce_type").rsplit(".", 1)[-1] for r in after] == ["ServiceCreateEvent"]
    # Each wide record is either processed (its event emitted) or dead-lettered as too_large
    # with its original bytes: never lost, never a stopped processor.
    wide_events = [r for r in events if _header(r, "ce_subject") == "svc-wide"]
    assert len(wide_events) + len(dead) == len(wide)
    originals = {r.offset: r.value for r in inputs}
    for letter in dead:
        assert letter.header(ERROR) == b"too_large", letter.headers
        offset = int(_header(letter, "tmf-events-source-offset"))
        assert letter.value == originals[offset]
    for record in events:
        assert_valid_event((record.headers, record.value))
