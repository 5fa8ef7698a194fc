"""Generate every file under `schemas/` from this one source.

    python -m processor.dev.schemagen            # (re)write the files
    python -m processor.dev.schemagen --check    # exit 1 and list the files that differ
    python -m processor.dev.schemagen --out DIR  # another target folder

Output: JSON with 2-space indent, members in the order written here (not sorted: the event
schemas list the envelope members in the order the processor renders them), UTF-8, one
trailing newline. Files under the target folder that look generated (`*.schema.json`,
`*.avsc`) but are no longer produced are removed on write and reported by `--check`.

What the files say is docs/design.md#input-change-records (input),
docs/design.md#output-tmf-events-as-cloudevents (events) and docs/state.md (state); TMF
facts (enums, spellings such as v4's `timeOcurred`) follow the TMF638/TMF639 specifications.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from processor.schemas import (
    EVENT_NAMES,
    event_schema_id,
    event_schema_relpath,
    schema_dir,
)
from processor.tmf import (
    ENTITY_NAME,
    RESOURCE_STATES,
    RESOURCE_V5_ALARM_STATUS,
    SERVICE_OPERATING_STATUS,
    SERVICE_STATE,
    TMF_API,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CHANGE_RECORD_SCHEMA_ID = "urn:tmf-events:schema:change-record"
AVRO_NAMESPACE = "tmf_events"

Schema = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

#: RFC 3339 UTC with exactly three fraction digits and `Z`
#: (docs/design.md#identity-and-determinism), e.g. `2025-01-01T10:00:00.123Z`.
EVENT_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
#: A UUIDv7 in canonical lower-case form (version nibble 7, RFC 9562 variant).
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"

API_TITLE = {"service": "TMF638 Service Inventory", "resource": "TMF639 Resource Inventory"}


def _nullable_string(description: str) -> Schema:
    return {"type": ["string", "null"], "description": description}


def _nullable_enum(values: list[str], description: str) -> Schema:
    return {
        "type": ["string", "null"],
        "enum": [*values, None],
        "description": description,
    }


def _event_kind(event_name: str) -> str:
    """`ServiceAttributeValueChangeEvent` -> `AttributeValueChange`."""
    for prefix in ENTITY_NAME.values():
        if event_name.startswith(prefix):
            return event_name[len(prefix) : -len("Event")]
    raise ValueError(event_name)


# ---------------------------------------------------------------------------------------------
# Event payloads
# ---------------------------------------------------------------------------------------------


def _identity_properties(entity_type: str, tmf_version: str) -> Schema:
    entity = ENTITY_NAME[entity_type]
    type_doc = f"class of the instance, `{entity}` unless the instance names a subclass"
    if tmf_version == "v4":
        type_doc += " (optional in v4)"
    return {
        "id": {"type": "string", "minLength": 1, "description": f"id of the {entity}"},
        "href": {"type": "string", "description": f"URI of the {entity}"},
        "@type": {"type": "string", "description": type_doc},
    }


def _entity_properties(entity_type: str, tmf_version: str) -> Schema:
    """Well-known attributes with their TMF types; every one of them may be `null` (delta)."""
    props = _identity_properties(entity_type, tmf_version)
    props |= {
        "@baseType": _nullable_string("super-class of `@type`"),
        "@schemaLocation": _nullable_string("URI of a JSON Schema of the instance's subclass"),
        "name": _nullable_string("name of the instance"),
        "description": _nullable_string("free-text description"),
        "category": _nullable_string("category of the instance"),
    }
    if entity_type == "service":
        props["state"] = _nullable_enum(
            SERVICE_STATE[tmf_version], "lifecycle state (ServiceStateType)"
        )
        if tmf_version == "v5":
            props["operatingStatus"] = _nullable_enum(
                SERVICE_OPERATING_STATUS, "operating status (ServiceOperatingStatusType)"
            )
        return props
    for field, values in RESOURCE_STATES[tmf_version].items():
        props[field] = _nullable_enum(values, f"{field} (ITU-T X.731 / M.3701)")
    if tmf_version == "v5":
        props["alarmStatus"] = {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": RESOURCE_V5_ALARM_STATUS},
            "description": "alarm status, multi-valued (ITU-T X.731 / M.3701)",
        }
        props["unknownStatus"] = {
            "type": ["boolean", "null"],
            "description": "true when the state of the resource is unknown",
        }
        props["allocationStatus"] = _nullable_string(
            "allocation status, e.g. available, reserved, allocated, partiallyAllocated"
        )
    return props


def _payload_schema(entity_type: str, tmf_version: str, event_name: str) -> Schema:
    entity = ENTITY_NAME[entity_type]
    kind = _event_kind(event_name)
    required = ["id", "@type"] if tmf_version == "v5" else ["id"]
    if kind == "Delete":
        return {
            "type": "object",
            "description": f"the deleted {entity}: `id`, `href` and `@type` only",
            "properties": _identity_properties(entity_type, tmf_version),
            "required": required,
            "additionalProperties": False,
        }
    if kind == "Create":
        description = f"the full public {entity} instance"
    else:
        description = (
            f"the {entity} after the change: the full public instance (payload `full`) or "
            "`id`, `href`, `@type` and the changed top-level attributes, `null` for a removed "
            "one (payload `delta`)"
        )
    return {
        "type": "object",
        "description": description
        + "; attributes other than the well-known ones are the instance's own",
        "properties": _entity_properties(entity_type, tmf_version),
        "required": required,
        "additionalProperties": True,
    }


# ---------------------------------------------------------------------------------------------
# Event envelopes
# ---------------------------------------------------------------------------------------------


def _timestamp(description: str) -> Schema:
    return {"$ref": "#/$defs/Timestamp", "description": description}


def event_schema(entity_type: str, tmf_version: str, event_name: str) -> Schema:
    """The JSON Schema of one TMF event value, as the processor renders it."""
    entity = ENTITY_NAME[entity_type]
    api = TMF_API[entity_type]
    kind = _event_kind(event_name)
    v5 = tmf_version == "v5"

    props: Schema = {}
    if v5:
        props["@type"] = {"const": event_name, "description": "the event name"}
        props["@baseType"] = {"const": "Event", "description": "always `Event`"}
    props |= {
        "eventId": {
            "type": "string",
            "format": "uuid",
            "pattern": UUID7_PATTERN,
            "description": "UUIDv7 (time = eventTime); equals the `ce_id` header",
        },
        "eventTime": _timestamp("when the change happened; equals the `ce_time` header"),
        "eventType": {"const": event_name, "description": "the event name"},
        "correlationId": {
            "type": "string",
            "description": "the change record's correlationId, else the instance id",
        },
        "domain": {"type": "string", "description": "constant from config `envelope`"},
        "title": {"type": "string", "description": "constant from config `envelope`"},
        "description": {"type": "string", "description": "constant from config `envelope`"},
        "priority": {"type": "string", "description": "constant from config `envelope`"},
    }
    time_occurred = "timeOccurred" if v5 else "timeOcurred"
    props[time_occurred] = _timestamp(
        "same value as eventTime" + ("" if v5 else " (TMF v4 spells it with one `r`)")
    )
    required = [*(["@type", "@baseType"] if v5 else []), "eventId", "eventTime", "eventType"]
    required += ["correlationId", time_occurred]
    if kind == "AttributeValueChange" and not v5:
        props["fieldPath"] = {
            "type": "string",
            "minLength": 1,
            "description": "the changed non-state top-level attribute names, sorted, "
            "comma-separated",
        }
        required.append("fieldPath")
    if v5:
        props["source"] = {"$ref": "#/$defs/EntityRef", "description": "the emitting system"}
        props["reportingSystem"] = {
            "$ref": "#/$defs/EntityRef",
            "description": "the reporting system (config `reporting_system`)",
        }
        required += ["source", "reportingSystem"]
    props["event"] = {
        "type": "object",
        "description": f'the payload, `{{"{entity_type}": {entity}}}`',
        "properties": {entity_type: {"$ref": f"#/$defs/{entity}"}},
        "required": [entity_type],
        "additionalProperties": False,
    }
    required.append("event")

    defs: Schema = {
        "Timestamp": {
            "type": "string",
            "format": "date-time",
            "pattern": EVENT_TIME_PATTERN,
            "description": "RFC 3339 UTC with milliseconds and `Z`, e.g. 2025-01-01T10:00:00.123Z",
        },
        entity: _payload_schema(entity_type, tmf_version, event_name),
    }
    if v5:
        defs["EntityRef"] = {
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "href": {"type": "string"},
                "name": {"type": "string"},
                "@referredType": {"type": "string"},
                "@type": {"const": "EntityRef"},
            },
            "required": ["id"],
            "additionalProperties": False,
        }

    fieldpath_note = " Carries `fieldPath`." if kind == "AttributeValueChange" and not v5 else ""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": event_schema_id(entity_type, tmf_version, event_name),
        "title": event_name,
        "description": (
            f"{API_TITLE[entity_type]} {tmf_version} {event_name} as tmf-events emits it: the "
            f"value of a Kafka record on the {entity_type} events topic (the CloudEvent `data`), "
            f"whose `ce_dataschema` header is this schema's `$id` and `ce_type` ends in "
            f"`{api}.{tmf_version}.{event_name}`.{fieldpath_note}"
        ),
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        "$defs": defs,
    }


# ---------------------------------------------------------------------------------------------
# Input and state
# ---------------------------------------------------------------------------------------------


def change_record_json_schema() -> Schema:
    """The input change-record envelope (docs/design.md#input-change-records), JSON flavour."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": CHANGE_RECORD_SCHEMA_ID,
        "title": "ChangeRecord",
        "description": (
            "A change record on the input topic (JSON value; the Kafka key is the instance id). "
            "Rules JSON Schema cannot state: the key must equal `instance.id` and `id` when "
            "given; a tombstone (null value) deletes the key."
        ),
        "type": "object",
        "properties": {
            "entityType": {
                "enum": ["service", "resource"],
                "description": "TMF638 Service or TMF639 Resource",
            },
            "operation": {
                "enum": ["upsert", "delete"],
                "default": "upsert",
                "description": "upsert (default) or delete",
            },
            "id": {"type": "string", "description": "the instance id; must equal the key"},
            "observedAt": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 time of the change; default: the record timestamp "
                "(an unparsable one is bad input with reason `invalid_timestamp`)",
            },
            "correlationId": {
                "type": "string",
                "description": "e.g. the order that caused the change",
            },
            "instance": {
                "type": "object",
                "description": "the instance's current TMF JSON",
                "properties": {"id": {"type": "string"}},
                "required": ["id"],
            },
        },
        "required": ["entityType"],
        "additionalProperties": False,
        "if": {"properties": {"operation": {"const": "delete"}}, "required": ["operation"]},
        "else": {"required": ["instance"]},
    }


def _optional_string(name: str, doc: str) -> Schema:
    return {"name": name, "type": ["null", "string"], "default": None, "doc": doc}


def change_record_avro_schema() -> Schema:
    """The input change-record envelope, Avro flavour (`instance` travels as JSON text)."""
    return {
        "type": "record",
        "name": "ChangeRecord",
        "namespace": AVRO_NAMESPACE,
        "doc": "A change record on the input topic (Avro value; the key is the instance id).",
        "fields": [
            {"name": "entityType", "type": "string", "doc": "service or resource"},
            {
                "name": "operation",
                "type": "string",
                "default": "upsert",
                "doc": "upsert or delete",
            },
            _optional_string("id", "the instance id; must equal the key when present"),
            _optional_string("observedAt", "RFC 3339 time of the change"),
            _optional_string("correlationId", "e.g. the order that caused the change"),
            _optional_string(
                "instance",
                "the instance's current TMF JSON as JSON text (Avro cannot express arbitrary "
                "JSON); required for upsert",
            ),
        ],
    }


def state_record_avro_schema() -> Schema:
    """The per-key state on the changelog topic (docs/state.md)."""
    stored_event = {
        "type": "record",
        "name": "StoredEvent",
        "doc": "An event emitted for this key, as produced.",
        "fields": [
            {"name": "id", "type": "string", "doc": "eventId (= ce_id)"},
            {"name": "type", "type": "string", "doc": "eventType, e.g. ServiceCreateEvent"},
            {"name": "time", "type": "string", "doc": "eventTime (RFC 3339 UTC, ms, Z)"},
            {"name": "topic", "type": "string", "doc": "the output topic"},
            {
                "name": "cloudevent",
                "type": "string",
                "doc": "the event as a structured-mode CloudEvent (JSON): every ce_ attribute "
                "at top level plus `data`, the TMF event",
            },
        ],
    }
    return {
        "type": "record",
        "name": "StateRecord",
        "namespace": AVRO_NAMESPACE,
        "doc": "State of one instance (changelog value; the key is the instance id).",
        "fields": [
            {
                "name": "events",
                "type": {"type": "array", "items": stored_event},
                "default": [],
                "doc": "the last events of this key, newest first; first in the record and "
                "written as one block with its byte size, so a reader that needs no events "
                "skips them in one step",
            },
            {"name": "entityType", "type": "string", "doc": "service or resource"},
            {
                "name": "version",
                "type": "long",
                "doc": "instance version after the last applied change (1 for a new instance)",
            },
            {
                "name": "hash",
                "type": "bytes",
                "doc": "16-byte BLAKE2b of the public rendering (canonical JSON)",
            },
            {
                "name": "attrNames",
                "type": "string",
                "doc": "the top-level public attribute names, separated by NUL characters",
            },
            {
                "name": "attrDigests",
                "type": "bytes",
                "doc": "per name in attrNames, in that order, the big-endian CRC-32 (4 bytes) "
                "of the attribute's canonical JSON (tells which attributes changed)",
            },
            {"name": "deleted", "type": "boolean", "doc": "true once the instance is deleted"},
            {
                "name": "observedAt",
                "type": "long",
                "doc": "time of the last applied change, ms since the Unix epoch",
            },
            {
                "name": "offset",
                "type": "long",
                "doc": "input offset of the record that last changed this key",
            },
            _optional_string("href", "the instance's href"),
            _optional_string("atType", "the instance's @type"),
            _optional_string("lastEventId", "eventId of the last event (the chain's head)"),
            _optional_string("lastEventType", "eventType of the last event"),
            _optional_string("lastEventTime", "eventTime of the last event"),
        ],
    }


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def render_json(document: Schema) -> str:
    """The text of one generated file."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Every generated file: path relative to the schema folder (`/`-separated) -> text."""
    files: dict[str, str] = {
        "change-record.schema.json": render_json(change_record_json_schema()),
        "change-record.avsc": render_json(change_record_avro_schema()),
        "state-record.avsc": render_json(state_record_avro_schema()),
    }
    for (entity_type, tmf_version), names in sorted(EVENT_NAMES.items()):
        for event_name in names:
            rel = event_schema_relpath(entity_type, tmf_version, event_name)
            files[rel] = render_json(event_schema(entity_type, tmf_version, event_name))
    return dict(sorted(files.items()))


def _stale(out_dir: Path, expected: dict[str, str]) -> list[str]:
    if not out_dir.is_dir():
        return []
    found = {
        p.relative_to(out_dir).as_posix()
        for pattern in ("*.schema.json", "*.avsc")
        for p in out_dir.rglob(pattern)
        if p.is_file()
    }
    return sorted(found - expected.keys())


def differences(out_dir: Path) -> list[str]:
    """Files under `out_dir` that are missing, differ from the generator output, or are stale."""
    expected = generate()
    changed = []
    for rel, text in expected.items():
        path = out_dir / rel
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            changed.append(rel)
            continue
        if current != text.encode("utf-8"):
            changed.append(rel)
    return sorted(changed + _stale(out_dir, expected))


def write(out_dir: Path) -> list[str]:
    """(Re)write the files under `out_dir`; returns what was written or removed."""
    expected = generate()
    touched = []
    for rel, text in expected.items():
        path = out_dir / rel
        data = text.encode("utf-8")
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        touched.append(rel)
    for rel in _stale(out_dir, expected):
        (out_dir / rel).unlink()
        touched.append(rel)
    return sorted(touched)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.dev.schemagen",
        description="Generate the JSON Schema and Avro files under schemas/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing the files that differ from the generator output",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="target folder (default: the schema folder)"
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out if args.out is not None else schema_dir()
    if args.check:
        changed = differences(out_dir)
        for rel in changed:
            print(f"differs: {out_dir / rel}")
        if changed:
            print(
                f"{len(changed)} schema file(s) out of date; run `make schemas`",
                file=sys.stderr,
            )
            return 1
        return 0
    for rel in write(out_dir):
        print(f"updated: {out_dir / rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
