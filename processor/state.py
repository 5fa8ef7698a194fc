"""Per-instance last-event state (DESIGN §6) and its Avro changelog encoding."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import fastavro

from processor.schemas import load_avro_schema


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """One emitted event as the domain API serves it."""

    id: str
    type: str
    time: str
    topic: str
    headers: tuple[tuple[str, bytes], ...]
    value: str


@dataclass(slots=True)
class State:
    entity_type: str
    version: int
    hash: bytes
    attrs: dict[str, int]
    deleted: bool
    observed_at: int
    offset: int
    href: str | None
    at_type: str | None
    last_event_id: str | None
    last_event_type: str | None
    last_event_time: str | None
    events: tuple[StoredEvent, ...] = field(default=())


def to_avro_dict(state: State) -> dict[str, Any]:
    return {
        "entityType": state.entity_type,
        "version": state.version,
        "hash": state.hash,
        "attrs": state.attrs,
        "deleted": state.deleted,
        "observedAt": state.observed_at,
        "offset": state.offset,
        "href": state.href,
        "atType": state.at_type,
        "lastEventId": state.last_event_id,
        "lastEventType": state.last_event_type,
        "lastEventTime": state.last_event_time,
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "time": e.time,
                "topic": e.topic,
                "headers": [{"key": k, "value": v} for k, v in e.headers],
                "value": e.value,
            }
            for e in state.events
        ],
    }


def from_avro_dict(rec: dict[str, Any]) -> State:
    return State(
        entity_type=rec["entityType"],
        version=rec["version"],
        hash=rec["hash"],
        attrs=rec["attrs"],
        deleted=rec["deleted"],
        observed_at=rec["observedAt"],
        offset=rec["offset"],
        href=rec["href"],
        at_type=rec["atType"],
        last_event_id=rec["lastEventId"],
        last_event_type=rec["lastEventType"],
        last_event_time=rec["lastEventTime"],
        events=tuple(
            StoredEvent(
                id=e["id"],
                type=e["type"],
                time=e["time"],
                topic=e["topic"],
                headers=tuple((h["key"], h["value"]) for h in e["headers"]),
                value=e["value"],
            )
            for e in rec["events"]
        ),
    )


def encode_state(state: State) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_avro_schema("state-record"), to_avro_dict(state))
    return buf.getvalue()


def decode_state(data: bytes) -> State:
    rec = fastavro.schemaless_reader(io.BytesIO(data), load_avro_schema("state-record"))
    if not isinstance(rec, dict):
        raise ValueError("state record is not an Avro record")
    return from_avro_dict(rec)


class StateStore:
    """In-memory state per input partition; the changelog topic is its durable copy.

    Restored entries stay Avro-encoded (or None for a tombstone) until first read.
    """

    def __init__(self) -> None:
        self.partitions: dict[int, dict[str, State | bytes | None]] = {}

    def get(self, partition: int, key: str) -> State | None:
        part = self.partitions.get(partition)
        if part is None:
            return None
        value = part.get(key)
        if value is None or isinstance(value, State):
            return value
        state = decode_state(value)
        part[key] = state
        return state

    def put_raw(self, partition: int, key: str, data: bytes | None) -> None:
        part = self.partitions.setdefault(partition, {})
        if data is None:
            part.pop(key, None)
        else:
            part[key] = data

    def put(self, partition: int, key: str, state: State) -> None:
        self.partitions.setdefault(partition, {})[key] = state

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def keys(self, partition: int) -> int:
        return len(self.partitions.get(partition, ()))
