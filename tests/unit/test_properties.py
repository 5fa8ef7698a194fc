"""Properties of whole change histories (hypothesis): random operations over a few keys.

Each history is a list of replay lines (docs/design.md#interfaces): creates and updates with random
TMF-ish instances (state fields, nested characteristics, a private `note` at the top and inside
characteristics), re-sends of the same instance, private-only changes, deletes, tombstones, stale
records, replayed offsets, garbage and entity type mismatches. Runs are derandomized (same examples
every run) and kept small so the module takes a few seconds.
"""

from __future__ import annotations

import contextlib
import io
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from processor.config import Settings
from processor.messages import Result
from processor.records import InputRecord
from processor.replay import parse_line, replay, run_replay
from processor.task import new_task
from processor.timefmt import format_ms
from tests.schema_check import assert_valid_event

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

T0_MS = 1_767_261_600_000
SERVICE_KEYS = ("svc-a", "svc-b")
RESOURCE_KEYS = ("res-a",)
KEYS = SERVICE_KEYS + RESOURCE_KEYS
PRIVATE_FIELDS = ["note", "serviceCharacteristic.note", "resourceCharacteristic.note"]
SECRET = "SECRET"

SERVICE_STATES = ["feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"]
OPERATING = ["pending", "configured", "running", "degraded", "stopped", "unknown"]
RESOURCE_STATES = {
    "v4": {
        "resourceStatus": ["standby", "available", "reserved"],
        "operationalState": ["enable", "disable"],
        "administrativeState": ["locked", "unlocked", "shutdown"],
        "usageState": ["idle", "active", "busy"],
    },
    "v5": {
        "operationalState": ["enabled", "disabled"],
        "administrativeState": ["locked", "unlocked", "shuttingDown"],
        "usageState": ["idle", "active", "busy"],
        "lifecycleState": ["planned", "installed"],
        "alarmStatus": [["minor"], ["major", "critical"], []],
        "unknownStatus": [True, False],
    },
}
KINDS = (
    ["upsert"] * 5
    + ["same"] * 2
    + ["private"] * 2
    + [
        "delete",
        "tombstone",
        "stale",
        "dup",
        "garbage",
        "mismatch",
    ]
)


def entity_of(key: str) -> str:
    return "service" if key.startswith("svc") else "resource"


SECRETS = st.integers(0, 999).map(lambda n: f"{SECRET}-{n}")
CHARACTERISTICS = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["speed", "vlan", "ip"]),
            "value": st.one_of(st.integers(0, 3), st.sampled_from(["1G", "10G"])),
        },
        optional={"note": SECRETS},
    ),
    max_size=3,
)


def _instances(key: str, version: str) -> st.SearchStrategy[dict[str, Any]]:
    common = {
        "description": st.sampled_from(["first", "second"]),
        "category": st.sampled_from(["CFS", "RFS"]),
        "note": SECRETS,
        "relatedParty": st.lists(
            st.fixed_dictionaries(
                {"id": st.sampled_from(["p1", "p2"]), "role": st.sampled_from(["owner", "user"])}
            ),
            max_size=2,
        ),
    }
    if entity_of(key) == "service":
        required = {
            "id": st.just(key),
            "href": st.just(f"/tmf-api/serviceInventory/v4/service/{key}"),
            "name": st.sampled_from(["Internet", "VPN"]),
            "state": st.sampled_from(SERVICE_STATES),
        }
        optional = {
            **common,
            "operatingStatus": st.sampled_from(OPERATING),
            "@type": st.sampled_from(["Service", "BroadbandService"]),
            "serviceCharacteristic": CHARACTERISTICS,
        }
    else:
        required = {
            "id": st.just(key),
            "href": st.just(f"/tmf-api/resourceInventoryManagement/v4/resource/{key}"),
            "name": st.sampled_from(["Router", "Switch"]),
        }
        optional = {
            **common,
            **{f: st.sampled_from(v) for f, v in RESOURCE_STATES[version].items()},
            "@type": st.sampled_from(["PhysicalResource", "LogicalResource"]),
            "resourceCharacteristic": CHARACTERISTICS,
        }
    # `href` is always present here: test_render.py covers an instance dropping it.
    return st.fixed_dictionaries(required, optional=optional)


# Built once: building strategies inside every draw costs more than running the processor.
INSTANCES = {(k, v): _instances(k, v) for k in KEYS for v in ("v4", "v5")}


def public_view(instance: dict[str, Any]) -> dict[str, Any]:
    """The instance without its private members (an independent model of strip_private)."""
    out = {k: v for k, v in instance.items() if k != "note"}
    for name in ("serviceCharacteristic", "resourceCharacteristic"):
        if name in out:
            out[name] = [{k: v for k, v in c.items() if k != "note"} for c in out[name]]
    return out


def with_new_secrets(instance: dict[str, Any], seed: int) -> dict[str, Any]:
    out = dict(instance)
    out["note"] = f"{SECRET}-changed-{seed}"
    for name in ("serviceCharacteristic", "resourceCharacteristic"):
        if name in out:
            out[name] = [{**c, "note": f"{SECRET}-c{seed}-{i}"} for i, c in enumerate(out[name])]
    return out


@st.composite
def histories(draw: st.DrawFn, version: str = "v4") -> list[bytes]:
    lines: list[bytes] = []
    json_lines: list[bytes] = []
    last: dict[str, dict[str, Any]] = {}
    clock = T0_MS
    offset = 0
    for _ in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(KINDS))
        key = draw(st.sampled_from(KEYS))
        clock += draw(st.sampled_from([0, 1, 1000]))
        record: dict[str, Any] = {"offset": offset, "timestamp": clock}
        if draw(st.booleans()):
            record["headers"] = {"traceparent": f"00-{offset:032x}-{offset:016x}-01"}
        if kind in ("same", "private") and key not in last:
            kind = "upsert"
        if kind == "dup" and not json_lines:
            kind = "garbage"

        if kind == "garbage":
            lines.append(b"not a change record " + str(offset).encode())
            offset += 1
            continue
        if kind == "dup":
            lines.append(draw(st.sampled_from(json_lines)))  # same line, same offset
            continue
        if kind in ("delete", "tombstone"):
            if kind == "delete":
                record.update(entityType=entity_of(key), operation="delete", id=key)
                if draw(st.booleans()):
                    record["observedAt"] = format_ms(clock)
            else:
                record.update(key=key, value=None)
        else:
            if kind == "same":
                instance = last[key]
            elif kind == "private":
                instance = with_new_secrets(last[key], offset)
            else:
                instance = draw(INSTANCES[(key, version)])
            entity = entity_of(key)
            if kind == "mismatch":
                entity = "resource" if entity == "service" else "service"
            record.update(entityType=entity, instance=instance)
            if kind == "stale":
                record["observedAt"] = format_ms(clock - 5_000)
            elif draw(st.booleans()):
                record["observedAt"] = format_ms(clock)
            if draw(st.booleans()):
                record["correlationId"] = f"order-{draw(st.integers(1, 3))}"
            if kind != "mismatch":
                last[key] = instance
        line = orjson.dumps(record)
        lines.append(line)
        json_lines.append(line)
        offset += 1
    return lines


@cache
def settings_for(version: str, payload: str) -> Settings:
    return Settings(
        instance_id="property",
        tmf_version=version,
        payload=payload,
        private_fields=PRIVATE_FIELDS,
    )


PROFILES = st.sampled_from([("v4", "full"), ("v4", "delta"), ("v5", "full"), ("v5", "delta")])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Settings, list[bytes]]:
    version, payload = draw(PROFILES)
    return settings_for(version, payload), draw(histories(version))


def drive(lines: list[bytes], settings: Settings) -> list[tuple[InputRecord, Result, Any]]:
    """The replay loop, record by record, so properties can see each record's outcome and the
    state it left."""
    task = new_task(settings, native=False)
    steps = []
    for number, line in enumerate(lines):
        record = parse_line(line, number, settings.input_topic)
        result = task.process(record)
        task.commit()
        state = None if result.key is None else task.state(record.partition, result.key)
        steps.append((record, result, state))
    return steps


def _headers(message) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers if v is not None}


# --------------------------------------------------------------------------------------


OUTCOMES = {"emit", "unchanged", "stale", "unknown_delete", "replayed", "dead_letter"}
EVENTS = {
    "ServiceCreateEvent",
    "ServiceAttributeValueChangeEvent",
    "ServiceStateChangeEvent",
    "ServiceOperatingStatusChangeEvent",
    "ServiceDeleteEvent",
    "ResourceCreateEvent",
    "ResourceAttributeValueChangeEvent",
    "ResourceStateChangeEvent",
    "ResourceDeleteEvent",
}


class _CoveredError(Exception):  # not a failure: the draws may stop
    pass


def test_histories_reach_every_outcome():
    """The generator is worth its time only if it exercises every row of the decision table
    (docs/design.md#deciding) within a bounded number of draws."""
    seen: set[str] = set()
    events: set[str] = set()

    @settings(parent=PROPERTY, max_examples=600, phases=[Phase.generate])
    @given(scenarios())
    def run(scenario):
        version_settings, lines = scenario
        for _, result, _ in drive(lines, version_settings):
            seen.add(result.outcome)
            events.update(result.event_types)
        if seen == OUTCOMES and events >= EVENTS:
            raise _CoveredError  # stop drawing: everything was reached

    with contextlib.suppress(_CoveredError):
        run()
    assert seen == OUTCOMES
    assert events >= EVENTS


@PROPERTY
@given(scenarios())
def test_replay_is_deterministic(scenario):
    settings, lines = scenario
    outputs = []
    for _ in range(2):
        sink = io.BytesIO()
        run_replay(io.BytesIO(b"\n".join(lines) + b"\n"), sink, settings, with_state=True)
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b"\n") >= sum(1 for line in lines if not line.startswith(b"{"))


@PROPERTY
@given(scenarios())
def test_drive_matches_replay(scenario):
    settings, lines = scenario
    steps = drive(lines, settings)
    driven = [
        (m.topic, m.key, m.headers, m.value) for _, result, _ in steps for m in result.messages
    ]
    replayed = list(replay(lines, settings))
    assert len(driven) == len(replayed)
    for (topic, key, headers, value), out in zip(driven, replayed, strict=True):
        assert out["topic"] == topic
        assert out["key"] == (None if key is None else key.decode())
        assert out["headers"] == {k: None if v is None else v.decode() for k, v in headers}
        if topic.endswith(".events"):
            assert out["value"] == orjson.loads(value)


@PROPERTY
@given(scenarios())
def test_versions_only_grow_and_count_the_emitting_records(scenario):
    settings, lines = scenario
    emitted_records: dict[str, int] = {}
    for record, result, state in drive(lines, settings):
        if result.outcome != "emit":
            continue
        key = result.key
        emitted_records[key] = emitted_records.get(key, 0) + 1
        versions = {int(_headers(m)["ce_entityversion"]) for m in result.messages}
        assert versions == {emitted_records[key]}, (record, versions)
        assert state.version == emitted_records[key]


@PROPERTY
@given(scenarios())
def test_previous_id_is_the_instances_previous_event(scenario):
    settings, lines = scenario
    last_id: dict[str, str] = {}
    seen: set[str] = set()
    for _, result, _ in drive(lines, settings):
        for message in result.messages:
            if result.outcome != "emit":
                continue
            headers = _headers(message)
            subject = headers["ce_subject"]
            assert headers.get("ce_previousid") == last_id.get(subject)
            assert headers["ce_id"] not in seen
            seen.add(headers["ce_id"])
            last_id[subject] = headers["ce_id"]


def _keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys_anywhere(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys_anywhere(v) for v in node))
    return set()


@PROPERTY
@given(scenarios())
def test_no_private_field_ever_appears_in_output(scenario):
    settings, lines = scenario
    for out in replay(lines, settings, with_state=True):
        if out["topic"] == settings.dlq_topic:
            continue  # dead letters carry the original bytes on purpose
        assert "note" not in _keys_anywhere(out["value"])
        assert SECRET.encode() not in orjson.dumps(out)
        if out["topic"] == settings.changelog_topic:
            for event in out["value"]["events"]:  # stored events hold JSON text
                for text in event.values():
                    if isinstance(text, str) and text.startswith("{"):
                        assert "note" not in _keys_anywhere(orjson.loads(text))


@PROPERTY
@given(scenarios())
def test_an_unchanged_record_never_emits(scenario):
    settings, lines = scenario
    live: dict[str, dict[str, Any] | None] = {}
    unchanged_seen = 0
    for record, result, _ in drive(lines, settings):
        value = None if record.value is None else _json_or_none(record.value)
        if value is not None and value.get("operation", "upsert") == "upsert":
            instance = value.get("instance")
            key = record.key.decode() if record.key else None
            if isinstance(instance, dict) and live.get(key) == public_view(instance):
                assert result.messages == [] or result.outcome == "dead_letter"
                assert result.outcome in {"unchanged", "replayed", "stale", "dead_letter"}
                unchanged_seen += result.outcome == "unchanged"
        if result.outcome == "emit":
            names = [_headers(m)["ce_type"].rsplit(".", 1)[1] for m in result.messages]
            if names[-1].endswith("DeleteEvent"):
                live[result.key] = None
            else:
                live[result.key] = public_view(value["instance"])


def _json_or_none(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


@PROPERTY
@given(scenarios())
def test_every_emitted_event_validates_against_its_schema(scenario):
    settings, lines = scenario
    for out in replay(lines, settings):
        if out["topic"] in (settings.service_topic, settings.resource_topic):
            event = assert_valid_event(out)
            entity = "service" if out["topic"] == settings.service_topic else "resource"
            assert set(event["event"]) == {entity}
            assert out["key"] == out["headers"]["ce_subject"] == event["event"][entity]["id"]


# --------------------------------------------------------------------------------------
# bad input never raises

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "entityType": st.sampled_from(["service", "resource", "product", 5, None]),
        "operation": st.sampled_from(["upsert", "delete", "merge", None, 1]),
        "id": st.sampled_from(["k", "other", 5, None]),
        "observedAt": st.sampled_from(["2026-01-01T10:00:00Z", "bad", 1, None]),
        "correlationId": st.sampled_from(["c", 1, None]),
        "instance": st.one_of(
            json_values, st.fixed_dictionaries({"id": st.sampled_from(["k", "x", 1])})
        ),
        "extra": json_values,
    },
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    value=st.one_of(st.none(), st.binary(max_size=60), envelopes.map(orjson.dumps)),
    key=st.sampled_from([None, b"", b"k", b"\xff", b"other"]),
    timestamp=st.sampled_from([None, -1, 0, T0_MS]),
    avro=st.booleans(),
    profile=PROFILES,
)
def test_bad_input_never_raises(value, key, timestamp, avro, profile):
    version, payload = profile
    settings = settings_for(version, payload)
    if avro:
        settings = settings.model_copy(update={"input_format": "avro"})
    task = new_task(settings)  # the C path too, where it applies
    record = InputRecord(settings.input_topic, 0, 1, timestamp, key, value, [])
    first = task.process(record)
    task.commit()
    again = InputRecord(settings.input_topic, 0, 2, timestamp, key, value, [])
    for result in (first, task.process(again)):
        assert result.outcome in {
            "emit",
            "unchanged",
            "stale",
            "unknown_delete",
            "disabled",
            "replayed",
            "dead_letter",
        }
        if result.outcome == "dead_letter":
            (letter,) = result.messages
            assert letter.value == value
            assert letter.topic == settings.dlq_topic
