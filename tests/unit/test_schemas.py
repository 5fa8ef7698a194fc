"""The shipped schemas: generated, valid, and saying what the processor emits."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from jsonschema import Draft202012Validator

from processor.dev import schemagen
from processor.schemas import (
    EVENT_NAMES,
    event_schema_id,
    event_schema_path,
    load_avro_schema,
    load_json_schema,
    schema_dir,
)

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

ALL_EVENTS = [
    (entity_type, version, name)
    for (entity_type, version), names in sorted(EVENT_NAMES.items())
    for name in names
]

EVENT_ID = "0194226b-9d7b-7a3c-8f21-4c5d6e7f8091"
EVENT_TIME = "2025-01-01T10:00:00.123Z"
REPORTING = {"id": "tmf-events", "name": "tmf-events", "@type": "EntityRef"}


def validator(entity_type: str, version: str, event_name: str) -> Draft202012Validator:
    schema = load_json_schema(event_schema_id(entity_type, version, event_name))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def v4_event(event_name: str, entity_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": EVENT_ID,
        "eventTime": EVENT_TIME,
        "eventType": event_name,
        "correlationId": "order-42",
        "timeOcurred": EVENT_TIME,
    }
    if "AttributeValueChange" in event_name:
        event["fieldPath"] = ",".join(sorted(k for k in payload if k not in {"id", "href"}))
    event["event"] = {entity_type: payload}
    return event


def v5_event(event_name: str, entity_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "@type": event_name,
        "@baseType": "Event",
        "eventId": EVENT_ID,
        "eventTime": EVENT_TIME,
        "eventType": event_name,
        "correlationId": "order-42",
        "domain": "inventory",
        "title": "inventory change",
        "description": "an inventory change",
        "priority": "3",
        "timeOccurred": EVENT_TIME,
        "source": dict(REPORTING),
        "reportingSystem": dict(REPORTING),
        "event": {entity_type: payload},
    }


SERVICE_V4 = {
    "id": "svc-1",
    "href": "/tmf-api/serviceInventory/v4/service/svc-1",
    "name": "Internet access",
    "category": "CFS",
    "state": "active",
    "isBundle": False,
    "serviceCharacteristic": [{"name": "speed", "value": "1G"}],
    "serviceSpecification": {"id": "spec-1"},
}
SERVICE_V5 = {**SERVICE_V4, "@type": "Service", "state": "suspended", "operatingStatus": "running"}
RESOURCE_V4 = {
    "id": "res-1",
    "href": "/tmf-api/resourceInventoryManagement/v4/resource/res-1",
    "@type": "PhysicalResource",
    "name": "Router",
    "resourceStatus": "available",
    "operationalState": "enable",
    "administrativeState": "shutdown",
    "usageState": "busy",
    "place": {"id": "place-1"},
}
RESOURCE_V5 = {
    "id": "res-1",
    "href": "/resource/res-1",
    "@type": "PhysicalResource",
    "@baseType": "Resource",
    "operationalState": "enabled",
    "administrativeState": "shuttingDown",
    "lifecycleState": "installed",
    "alarmStatus": ["major", "alarmOutstanding"],
    "availabilityStatus": "online",
    "unknownStatus": False,
    "allocationStatus": "allocated",
    "standbyStatus": "providingService",
    "powerConsumingState": "fullPower",
    "place": [{"role": "installationAddress", "place": {"id": "p-1"}}],
}

VALID_EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("service", "v4", v4_event("ServiceCreateEvent", "service", SERVICE_V4)),
    (
        "service",
        "v4",
        v4_event(
            "ServiceAttributeValueChangeEvent",
            "service",
            {"id": "svc-1", "href": "/s/svc-1", "name": "renamed", "note": None},
        ),
    ),
    (
        "service",
        "v4",
        v4_event("ServiceStateChangeEvent", "service", {"id": "svc-1", "state": "terminated"}),
    ),
    ("service", "v4", v4_event("ServiceDeleteEvent", "service", {"id": "svc-1"})),
    (
        "service",
        "v4",
        v4_event(
            "ServiceDeleteEvent", "service", {"id": "svc-1", "href": "/s/1", "@type": "Service"}
        ),
    ),
    ("service", "v5", v5_event("ServiceCreateEvent", "service", SERVICE_V5)),
    (
        "service",
        "v5",
        v5_event(
            "ServiceAttributeValueChangeEvent",
            "service",
            {"id": "svc-1", "@type": "Service", "description": None, "place": []},
        ),
    ),
    (
        "service",
        "v5",
        v5_event(
            "ServiceOperatingStatusChangeEvent",
            "service",
            {"id": "svc-1", "href": "/s/1", "@type": "Service", "operatingStatus": "degraded"},
        ),
    ),
    (
        "service",
        "v5",
        v5_event("ServiceDeleteEvent", "service", {"id": "svc-1", "@type": "Service"}),
    ),
    ("resource", "v4", v4_event("ResourceCreateEvent", "resource", RESOURCE_V4)),
    (
        "resource",
        "v4",
        v4_event(
            "ResourceAttributeValueChangeEvent", "resource", {**RESOURCE_V4, "usageState": None}
        ),
    ),
    ("resource", "v5", v5_event("ResourceCreateEvent", "resource", RESOURCE_V5)),
    (
        "resource",
        "v5",
        v5_event(
            "ResourceStateChangeEvent",
            "resource",
            {"id": "res-1", "@type": "PhysicalResource", "operationalState": "disabled"},
        ),
    ),
    (
        "resource",
        "v5",
        v5_event(
            "ResourceDeleteEvent",
            "resource",
            {"id": "res-1", "href": "/resource/res-1", "@type": "PhysicalResource"},
        ),
    ),
]


def _drop(key: str) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        del event[key]

    return mutate


def _set(key: str, value: Any) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        event[key] = value

    return mutate


def _set_payload(entity_type: str, key: str, value: Any) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        event["event"][entity_type][key] = value

    return mutate


def _drop_payload(entity_type: str, key: str) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        del event["event"][entity_type][key]

    return mutate


# (index into VALID_EVENTS, what to break, mutation)
BROKEN_EVENTS: list[tuple[int, str, Any]] = [
    (0, "missing eventId", _drop("eventId")),
    (5, "missing eventId v5", _drop("eventId")),
    (0, "missing event", _drop("event")),
    (0, "missing timeOcurred", _drop("timeOcurred")),
    (0, "v5 spelling in v4", _set("timeOccurred", EVENT_TIME)),
    (0, "fieldPath on a create", _set("fieldPath", "name")),
    (1, "missing fieldPath", _drop("fieldPath")),
    (6, "fieldPath on a v5 event", _set("fieldPath", "description")),
    (5, "missing @type on v5 envelope", _drop("@type")),
    (5, "wrong @baseType", _set("@baseType", "Entity")),
    (5, "missing reportingSystem", _drop("reportingSystem")),
    (5, "EntityRef without id", _set("source", {"name": "x", "@type": "EntityRef"})),
    (0, "eventType of another event", _set("eventType", "ServiceDeleteEvent")),
    (0, "extra envelope member", _set("extra", 1)),
    (0, "eventTime without milliseconds", _set("eventTime", "2025-01-01T10:00:00Z")),
    (0, "eventTime with an offset", _set("eventTime", "2025-01-01T10:00:00.123+00:00")),
    (0, "eventTime not a time", _set("eventTime", "yesterday")),
    (0, "eventId not a UUID", _set("eventId", "abc")),
    (0, "eventId a UUIDv4", _set("eventId", "2f1c3b5e-0d3a-4c8e-9f21-4c5d6e7f8091")),
    (0, "priority not a string", _set("priority", 3)),
    (3, "extra member in Delete payload", _set_payload("service", "name", "x")),
    (13, "extra member in v5 Delete payload", _set_payload("resource", "@baseType", "Resource")),
    (8, "v5 Delete payload without @type", _drop_payload("service", "@type")),
    (6, "v5 payload without @type", _drop_payload("service", "@type")),
    (0, "payload without id", _drop_payload("service", "id")),
    (0, "payload with empty id", _set_payload("service", "id", "")),
    (0, "bad state enum", _set_payload("service", "state", "running")),
    (0, "v5-only state in v4", _set_payload("service", "state", "suspended")),
    (7, "bad operatingStatus", _set_payload("service", "operatingStatus", "active")),
    (9, "v5 operationalState value in v4", _set_payload("resource", "operationalState", "enabled")),
    (11, "v4 operationalState value in v5", _set_payload("resource", "operationalState", "enable")),
    (11, "bad alarmStatus item", _set_payload("resource", "alarmStatus", ["severe"])),
    (0, "name not a string", _set_payload("service", "name", 7)),
    (0, "href null", _set_payload("service", "href", None)),
    (0, "wrong payload member", lambda e: e.__setitem__("event", {"resource": {"id": "x"}})),
]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_checked_in_files_equal_generator_output() -> None:
    assert schemagen.differences(REPO_SCHEMAS) == [], (
        "schemas/ is out of date: run `python -m processor.dev.schemagen`"
    )


def test_generator_output_is_deterministic_json_with_trailing_newline() -> None:
    first, second = schemagen.generate(), schemagen.generate()
    assert first == second
    assert len(first) == 20
    for rel, text in first.items():
        assert text.endswith("}\n") and not text.endswith("\n\n"), rel
        assert schemagen.render_json(json.loads(text)) == text, rel


def test_check_and_write_in_a_scratch_folder(tmp_path: Path) -> None:
    assert schemagen.main(["--check", "--out", str(tmp_path)]) == 1
    assert schemagen.main(["--out", str(tmp_path)]) == 0
    assert schemagen.main(["--check", "--out", str(tmp_path)]) == 0
    changed = tmp_path / "tmf638" / "v4" / "ServiceCreateEvent.schema.json"
    changed.write_text("{}\n")
    stale = tmp_path / "tmf638" / "v4" / "ServiceBatchEvent.schema.json"
    stale.write_text("{}\n")
    assert schemagen.differences(tmp_path) == [
        "tmf638/v4/ServiceBatchEvent.schema.json",
        "tmf638/v4/ServiceCreateEvent.schema.json",
    ]
    assert schemagen.main(["--out", str(tmp_path)]) == 0
    assert not stale.exists()
    assert schemagen.differences(tmp_path) == []


def test_schema_dir_prefers_the_package_copy() -> None:
    import processor.schemas

    packaged = Path(processor.schemas.__file__).resolve().parent / "schemas"
    assert schema_dir() == (packaged if packaged.is_dir() else REPO_SCHEMAS)
    assert (schema_dir() / "state-record.avsc").is_file()


def test_there_are_17_event_schemas() -> None:
    assert len(ALL_EVENTS) == 17
    assert sum(1 for _ in REPO_SCHEMAS.rglob("*Event.schema.json")) == 17
    assert [n for (_, v, n) in ALL_EVENTS if v == "v5" and "Operating" in n] == [
        "ServiceOperatingStatusChangeEvent"
    ]


@pytest.mark.parametrize(("entity_type", "version", "event_name"), ALL_EVENTS)
def test_event_schema_is_valid_and_named(entity_type: str, version: str, event_name: str) -> None:
    path = event_schema_path(entity_type, version, event_name)
    api = "tmf638" if entity_type == "service" else "tmf639"
    assert path == REPO_SCHEMAS / api / version / f"{event_name}.schema.json"
    schema = load_json_schema(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == event_schema_id(entity_type, version, event_name)
    assert schema["$id"] == f"urn:tmf-events:schema:{api}:{version}:{event_name}"
    assert schema["title"] == event_name
    assert schema["description"]
    assert schema["additionalProperties"] is False
    assert load_json_schema(schema["$id"]) is schema
    assert load_json_schema(str(path)) is schema


@pytest.mark.parametrize(("entity_type", "version", "event_name"), ALL_EVENTS)
def test_envelope_members_in_rendering_order(
    entity_type: str, version: str, event_name: str
) -> None:
    props = list(load_json_schema(event_schema_id(entity_type, version, event_name))["properties"])
    middle = ["eventId", "eventTime", "eventType", "correlationId"]
    middle += ["domain", "title", "description", "priority"]
    if version == "v4":
        tail = ["fieldPath"] if "AttributeValueChange" in event_name else []
        assert props == [*middle, "timeOcurred", *tail, "event"]
    else:
        head = ["@type", "@baseType"]
        assert props == [*head, *middle, "timeOccurred", "source", "reportingSystem", "event"]


def test_event_schema_id_rejects_unknown_names() -> None:
    assert event_schema_id("service", "v4", "ServiceCreateEvent") == (
        "urn:tmf-events:schema:tmf638:v4:ServiceCreateEvent"
    )
    assert event_schema_id("resource", "v5", "ResourceDeleteEvent") == (
        "urn:tmf-events:schema:tmf639:v5:ResourceDeleteEvent"
    )
    for bad in [
        ("service", "v4", "ServiceOperatingStatusChangeEvent"),
        ("resource", "v5", "ResourceOperatingStatusChangeEvent"),
        ("service", "v4", "ResourceCreateEvent"),
        ("product", "v4", "ProductCreateEvent"),
        ("service", "v6", "ServiceCreateEvent"),
    ]:
        with pytest.raises(ValueError):
            event_schema_id(*bad)
    with pytest.raises(ValueError):
        load_json_schema("urn:tmf-events:schema:tmf999:v4:ServiceCreateEvent")


# --------------------------------------------------------------------------------------------
# Sample events
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity_type", "version", "event"),
    VALID_EVENTS,
    ids=[f"{v}-{e['eventType']}-{i}" for i, (_, v, e) in enumerate(VALID_EVENTS)],
)
def test_valid_sample_events(entity_type: str, version: str, event: dict[str, Any]) -> None:
    errors = list(validator(entity_type, version, event["eventType"]).iter_errors(event))
    assert errors == []


@pytest.mark.parametrize(
    ("index", "what", "mutate"), BROKEN_EVENTS, ids=[what for _, what, _ in BROKEN_EVENTS]
)
def test_broken_sample_events_are_rejected(index: int, what: str, mutate: Any) -> None:
    entity_type, version, valid = VALID_EVENTS[index]
    event = copy.deepcopy(valid)
    mutate(event)
    name = valid["eventType"]
    assert not validator(entity_type, version, name).is_valid(event), what


def test_delta_payload_may_null_every_typed_attribute() -> None:
    for entity_type, version, event_name in ALL_EVENTS:
        if "Delete" in event_name:
            continue
        schema = load_json_schema(event_schema_id(entity_type, version, event_name))
        entity = "Service" if entity_type == "service" else "Resource"
        payload_schema = schema["$defs"][entity]
        assert payload_schema["additionalProperties"] is True
        payload: dict[str, Any] = {"id": "x", "@type": entity}
        for key in payload_schema["properties"]:
            if key not in {"id", "href", "@type"}:
                payload[key] = None
        event = (v4_event if version == "v4" else v5_event)(event_name, entity_type, payload)
        assert validator(entity_type, version, event_name).is_valid(event), event_name


# --------------------------------------------------------------------------------------------
# Change record (JSON Schema)
# --------------------------------------------------------------------------------------------


def test_change_record_json_schema() -> None:
    schema = load_json_schema(schema_dir() / "change-record.schema.json")
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    good = [
        {"entityType": "service", "instance": {"id": "s1", "state": "active"}},
        {
            "entityType": "resource",
            "operation": "upsert",
            "id": "r1",
            "observedAt": "2025-01-01T10:00:00Z",
            "correlationId": "order-1",
            "instance": {"id": "r1"},
        },
        {"entityType": "service", "operation": "delete", "id": "s1"},
    ]
    bad = [
        {"instance": {"id": "s1"}},
        {"entityType": "product", "instance": {"id": "s1"}},
        {"entityType": "service"},
        {"entityType": "service", "operation": "upsert"},
        {"entityType": "service", "operation": "patch", "instance": {"id": "s1"}},
        {"entityType": "service", "instance": {"name": "no id"}},
        {"entityType": "service", "instance": {"id": 1}},
        {"entityType": "service", "instance": "{}"},
        {"entityType": "service", "instance": {"id": "s1"}, "extra": True},
        {"entityType": "service", "instance": {"id": "s1"}, "observedAt": 1},
    ]
    for record in good:
        assert v.is_valid(record), record
    for record in bad:
        assert not v.is_valid(record), record


# --------------------------------------------------------------------------------------------
# Avro
# --------------------------------------------------------------------------------------------


def _round_trip(schema: dict[str, Any], record: dict[str, Any]) -> Any:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, schema)


def test_change_record_avro() -> None:
    schema = load_avro_schema("change-record")
    assert schema["name"] == "tmf_events.ChangeRecord"
    assert [f["name"] for f in schema["fields"]] == [
        "entityType",
        "operation",
        "id",
        "observedAt",
        "correlationId",
        "instance",
    ]
    record = {"entityType": "service", "instance": json.dumps({"id": "s1"})}
    assert _round_trip(schema, record) == {
        "entityType": "service",
        "operation": "upsert",
        "id": None,
        "observedAt": None,
        "correlationId": None,
        "instance": '{"id": "s1"}',
    }


def test_state_record_avro_round_trip() -> None:
    schema = load_avro_schema("state-record")
    assert load_avro_schema("state-record") is schema
    assert schema["name"] == "tmf_events.StateRecord"
    assert [f["name"] for f in schema["fields"]] == [
        "events",
        "entityType",
        "version",
        "hash",
        "attrNames",
        "attrDigests",
        "deleted",
        "observedAt",
        "offset",
        "href",
        "atType",
        "lastEventId",
        "lastEventType",
        "lastEventTime",
    ]
    assert all(f.get("doc") for f in schema["fields"])
    event = v4_event("ServiceCreateEvent", "service", SERVICE_V4)
    record = {
        "entityType": "service",
        "version": 3,
        "hash": bytes(range(16)),
        "attrNames": "name\0state",
        "attrDigests": bytes(range(16)),
        "deleted": False,
        "observedAt": 1735725600123,
        "offset": 41,
        "href": "/s/svc-1",
        "atType": None,
        "lastEventId": EVENT_ID,
        "lastEventType": "ServiceCreateEvent",
        "lastEventTime": EVENT_TIME,
        "events": [
            {
                "id": EVENT_ID,
                "type": "ServiceCreateEvent",
                "time": EVENT_TIME,
                "topic": "tmf.service.events",
                "cloudevent": json.dumps(
                    {"specversion": "1.0", "id": EVENT_ID, "data": event}, separators=(",", ":")
                ),
            }
        ],
    }
    assert _round_trip(schema, record) == record


def test_state_record_defaults() -> None:
    schema = load_avro_schema("state-record")
    minimal = {
        "entityType": "resource",
        "version": 1,
        "hash": b"\x00" * 16,
        "attrNames": "",
        "attrDigests": b"",
        "deleted": True,
        "observedAt": 0,
        "offset": 0,
    }
    back = _round_trip(schema, minimal)
    assert back["events"] == []
    assert back["lastEventId"] is None


def test_unknown_avro_schema() -> None:
    with pytest.raises(ValueError):
        load_avro_schema("nope")
