"""Malformed records mixed 1:10 into a load: every one is dead-lettered with the right reason and
its original key, value and headers; every good record is processed exactly as replay says; the
processor never crashes or restarts (docs/design.md#input-change-records,
docs/runtime.md#exactly-once).

Kinds (docs/design.md#input-change-records reason codes): invalid_json, invalid_utf8 (value),
invalid_utf8 (key), schema_violation (wrong types), missing_key, id_mismatch, missing_instance,
unknown_entity_type, entity_type_mismatch (a live key sent with the other entity type),
invalid_timestamp, too_large (max_record_bytes = 4096 here), too_deep (deeper than 64).

Invalid UTF-8 in a header value is not bad input: docs/design.md#input-change-records defines a
change record by its key and value, Kafka header values are bytes, and the processor copies no
header onto events except a valid W3C `traceparent` (never one that is not UTF-8). Dead-lettering a
valid change because of an unrelated binary header would lose it. So a good record whose headers are
not UTF-8 (a binary `x-origin`, a binary `traceparent`) must be processed like any other (events
without `ce_traceparent`), and bad records carrying such headers must be dead-lettered with those
header bytes unchanged. Both are in the mix.

Short profile: 2k good records + 200 bad; long: 10k + 1k.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from random import Random

import orjson
from rich.console import Console
from rich.table import Table

from processor.config import Settings
from processor.dev.synthetic import Generator, Mix, rfc3339_ms
from tests.history import ERROR
from tests.kafka_helpers import Broker, Record, create_topics
from tests.loads import PacedProducer
from tests.processes import ProcessorProcess, Send, processor_fields
from tests.reliability import harness

UniqueName = Callable[[str], str]

PARTITIONS = 6
SEED = 639
MAX_RECORD_BYTES = 4096
KIND_HEADER = "x-test-kind"  # which kind of bad (or binary-header) record this is
BINARY = b"\xff\xfe\x00binary\xc3\x28"  # not UTF-8

# kind -> the reason the dead letter must carry
BAD_KINDS: dict[str, str] = {
    "invalid_json": "invalid_json",
    "invalid_utf8_value": "invalid_utf8",
    "invalid_utf8_key": "invalid_utf8",
    "schema_violation": "schema_violation",
    "missing_key": "missing_key",
    "id_mismatch": "id_mismatch",
    "missing_instance": "missing_instance",
    "unknown_entity_type": "unknown_entity_type",
    "entity_type_mismatch": "entity_type_mismatch",
    "invalid_timestamp": "invalid_timestamp",
    "too_large": "too_large",
    "too_deep": "too_deep",
}
GOOD_BINARY_HEADER = "binary_header"  # a good record with non-UTF-8 header values


def _instance(key: str, entity_type: str) -> dict[str, object]:
    base = "serviceInventory/v4/service" if entity_type == "service" else "resourceInventory"
    instance: dict[str, object] = {
        "id": key,
        "href": f"/tmf-api/{base}/{key}",
        "name": f"bad input probe {key}",
    }
    if entity_type == "service":
        instance["state"] = "active"
    else:
        instance["resourceStatus"] = "available"
    return instance


def _bad(kind: str, n: int, ts: int, live: tuple[str, str] | None) -> Send:
    """One malformed record of `kind`; `live` is a (key, entity type) with state by now."""
    key = f"bad-{n:05d}"
    observed = rfc3339_ms(ts)
    good = {
        "entityType": "service",
        "operation": "upsert",
        "id": key,
        "observedAt": observed,
        "instance": _instance(key, "service"),
    }
    k: bytes | None = key.encode()
    value: bytes
    if kind == "invalid_json":
        value = orjson.dumps(good)[:-7] + b",,}"
    elif kind == "invalid_utf8_value":
        value = orjson.dumps(good).replace(b"bad input probe", b"bad \xff\xfe probe")
    elif kind == "invalid_utf8_key":
        k = b"bad-\xff\xfe-" + str(n).encode()
        value = orjson.dumps({**good, "id": None, "instance": _instance("x", "service")})
    elif kind == "schema_violation":
        value = orjson.dumps({**good, "observedAt": 1_767_225_600, "operation": ["upsert"]})
    elif kind == "missing_key":
        k = None
        value = orjson.dumps(good)
    elif kind == "id_mismatch":
        value = orjson.dumps({**good, "instance": _instance(f"other-{n}", "service")})
    elif kind == "missing_instance":
        value = orjson.dumps({k2: v for k2, v in good.items() if k2 != "instance"})
    elif kind == "unknown_entity_type":
        value = orjson.dumps({**good, "entityType": "product"})
    elif kind == "entity_type_mismatch":
        assert live is not None
        live_key, live_type = live
        other = "resource" if live_type == "service" else "service"
        k = live_key.encode()
        value = orjson.dumps(
            {
                "entityType": other,
                "id": live_key,
                "observedAt": observed,
                "instance": _instance(live_key, other),
            }
        )
    elif kind == "invalid_timestamp":
        value = orjson.dumps({**good, "observedAt": "2026-02-30T25:61:00Z"})
    elif kind == "too_large":
        instance = _instance(key, "service")
        instance["description"] = "x" * (MAX_RECORD_BYTES + 100)
        value = orjson.dumps({**good, "instance": instance})
    elif kind == "too_deep":
        nested: object = "deep"
        for _ in range(80):
            nested = {"d": nested}
        instance = _instance(key, "service")
        instance["serviceCharacteristic"] = [{"name": "deep", "value": nested}]
        value = orjson.dumps({**good, "instance": instance})
    else:
        raise ValueError(kind)
    headers: list[tuple[str, bytes | None]] = [(KIND_HEADER, kind.encode())]
    if n % 3 == 0:  # some bad records carry binary headers too: kept byte for byte
        headers += [("x-origin", BINARY), ("traceparent", BINARY), ("x-null", None)]
    return Send(k, value, ts, tuple(headers))


def mixed_input(good: int, keys: int, start_ms: int) -> Iterator[Send]:
    """`good` synthetic records; after every 10 of them one bad record, the kinds in turn;
    every 25th good record carries non-UTF-8 header values (and must be processed)."""
    gen = Generator(seed=SEED, keys=keys, mix=Mix(), start_ms=start_ms, step_ms=1)
    kinds = list(BAD_KINDS)
    rng = Random(SEED)
    created: list[tuple[str, str]] = []
    bad = 0
    for i, record in enumerate(gen.records(good), start=1):
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 25 == 0:
            headers = (
                (KIND_HEADER, GOOD_BINARY_HEADER.encode()),
                ("x-origin", BINARY),
                ("traceparent", BINARY),
            )
        yield Send(record.key, record.value, record.timestamp_ms, headers)
        if record.kind == "create":
            created.append((record.key.decode(), _entity_type(record.value)))
        if i % 10 == 0:
            kind = kinds[bad % len(kinds)]
            if kind == "entity_type_mismatch" and not created:
                kind = "invalid_json"
            live = created[rng.randrange(len(created))] if created else None
            yield _bad(kind, bad, record.timestamp_ms, live)
            bad += 1


def _entity_type(value: bytes | None) -> str:
    assert value is not None
    entity_type = orjson.loads(value)["entityType"]
    assert isinstance(entity_type, str)
    return entity_type


def _kind_table(rows: dict[str, list[int]], title: str) -> str:
    table = Table(title=title)
    for column in ("kind", "sent", "dead-lettered", "right reason", "events"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, (sent, dead, right, events) in sorted(rows.items()):
        table.add_row(kind, str(sent), str(dead), str(right), str(events))
    buffer = io.StringIO()
    Console(file=buffer, width=100, no_color=True, color_system=None).print(table)
    return buffer.getvalue()


def test_bad_input_is_dead_lettered_and_never_stops_the_processor(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    name = unique_name("rel-bad")
    fields = processor_fields(
        bootstrap, name, instance_id="bad-0", max_record_bytes=MAX_RECORD_BYTES
    )
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: PARTITIONS})
    good = harness.pick(2_000, 10_000)
    # Near now: records older than the topic's retention would be deleted at once.
    start_ms = int(time.time() * 1000) - 3_600_000
    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    load = PacedProducer(
        bootstrap, settings.input_topic, mixed_input(good, harness.pick(500, 2_000), start_ms), 500
    )
    with harness.closing(proc):
        proc.start()
        proc.wait_ready(120)
        pid = proc.pid
        load.start()
        try:
            sent = load.wait(600)
        finally:
            load.stop()
        assert proc.alive and proc.pid == pid, proc.log()[-4000:]
        inputs = harness.drain(bootstrap, settings, sent, timeout=300)
        # Never restarted: the same process all along, alive and ready at the end.
        assert proc.starts == 1 and proc.pid == pid
        assert proc.alive, f"exited with {proc.returncode()}: {proc.log()[-4000:]}"
        assert proc.ready(), proc.readyz()
        assert proc.terminate(120) == 0, proc.log()[-4000:]

    title = f"bad input 1:10 on {noida_broker.kind}"
    report, output, expectation = harness.history(bootstrap, settings, inputs, title)
    # Per kind: records sent, dead-lettered, with the right reason; events replay expects.
    letters: dict[tuple[int, int], list[Record]] = {}
    for letter in output:
        if letter.topic == settings.dlq_topic:
            source = (
                int(letter.header("tmf-events-source-partition") or b"-1"),
                int(letter.header("tmf-events-source-offset") or b"-1"),
            )
            letters.setdefault(source, []).append(letter)
    events = Counter(m.source for m in expectation.events)
    rows: dict[str, list[int]] = {}
    for record in inputs:
        source = (record.partition, record.offset)
        raw = next((v for k, v in record.headers if k == KIND_HEADER), None)
        kind = "good" if raw is None else raw.decode()
        row = rows.setdefault(kind, [0, 0, 0, 0])
        found = letters.get(source, [])
        want = BAD_KINDS.get(kind)
        row[0] += 1
        row[1] += 1 if found else 0
        row[2] += (
            1 if want and found and all(r.header(ERROR) == want.encode() for r in found) else 0
        )
        row[3] += events[source]
    text = _kind_table(rows, "bad input by kind (reasons as read; events as replay expects)")
    print(text, flush=True)
    assert set(BAD_KINDS) <= set(rows), f"kinds never sent: {set(BAD_KINDS) - set(rows)}\n{text}"
    wrong = [
        kind
        for kind, (n, n_dead, n_right, _) in rows.items()
        if (kind in BAD_KINDS and not n_dead == n_right == n) or (kind not in BAD_KINDS and n_dead)
    ]
    assert not wrong, f"wrong dead-lettering for {wrong}\n{text}\n{report.table()}"
    assert rows[GOOD_BINARY_HEADER][3] > 0, (
        f"good records with binary headers emitted nothing\n{text}"
    )
    report.assert_exact(allow_copies=False)
    harness.assert_no_traceback(proc)
