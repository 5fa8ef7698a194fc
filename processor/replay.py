"""`tmf-events replay`: change records from JSON Lines in, the processor's messages out.

No Kafka: each line stands in for one Kafka record (docs/design.md#interfaces) and goes through
`Core`, the same code path as `run`. A line is a change record (with optional stand-in
members for the record's key, coordinates and headers), kcat's JSON envelope of a record
taken from a topic (`kcat -C -J`: its exact bytes and coordinates), or raw value bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from processor.config import Settings
from processor.messages import OutMessage
from processor.records import InputRecord
from processor.state.codec import decode_state, to_avro_dict
from processor.task import Tallies, new_task

_RECORD_MEMBERS = ("key", "partition", "offset", "timestamp", "headers")

# What `kcat -C -J` writes per record; the last four only with its Avro deserialiser.
_KCAT_MEMBERS = frozenset(
    {
        "topic",
        "partition",
        "offset",
        "tstype",
        "ts",
        "broker",
        "headers",
        "key",
        "payload",
        "key_error",
        "payload_error",
        "key_schema_id",
        "value_schema_id",
    }
)
_KCAT_REQUIRED = frozenset({"topic", "partition", "offset", "payload"})


class ReplayInputError(ValueError):
    """A line whose Kafka-record members (key, partition, ...) have the wrong type."""


def parse_line(line: bytes, number: int, topic: str) -> InputRecord:
    """Turn one input line (without its newline) into the Kafka record it stands for."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = _kcat_with_raw_bytes(line)
    if isinstance(obj, dict) and _is_kcat(obj):
        return _kcat_record(obj, number)
    if not isinstance(obj, dict):
        # Not a JSON object: raw value bytes, so bad input can be replayed too.
        return InputRecord(topic, 0, number, None, None, line, [])
    meta = {k: obj.pop(k) for k in _RECORD_MEMBERS if k in obj}
    partition = _int(meta.get("partition", 0), "partition", number)
    offset = _int(meta.get("offset", number), "offset", number)
    ts = meta.get("timestamp")
    timestamp = None if ts is None else _int(ts, "timestamp", number)
    headers = _headers(meta.get("headers") or {}, number)
    if "key" in meta:
        key_obj = meta["key"]
        if key_obj is not None and not isinstance(key_obj, str):
            raise ReplayInputError(f"line {number + 1}: key must be a string or null")
        key = None if key_obj is None else key_obj.encode()
    else:
        key = _default_key(obj)
    if set(obj) == {"value"} and obj["value"] is None:
        return InputRecord(topic, partition, offset, timestamp, key, None, headers)
    # The line itself is the value unless record members had to be taken out of it.
    value = orjson.dumps(obj) if meta else line
    return InputRecord(topic, partition, offset, timestamp, key, value, headers)


def _is_kcat(obj: dict[str, Any]) -> bool:
    # Only kcat's members, its mandatory ones included: no change record looks like that.
    return _KCAT_REQUIRED <= obj.keys() <= _KCAT_MEMBERS


def _kcat_with_raw_bytes(line: bytes) -> Any:
    """kcat writes key, payload and header bytes into its JSON strings unvalidated: a binary
    value (Avro, say) makes the line invalid UTF-8. Such a line still parses with each
    undecodable byte kept as a surrogate, which encodes back to the same byte."""
    if not line.startswith(b'{"topic":'):
        return None
    try:
        obj = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and _is_kcat(obj) else None


def _bytes(value: Any, name: str, number: int) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReplayInputError(
            f"line {number + 1}: kcat {name} must be a string or null (values decoded with "
            "kcat -s avro cannot be replayed: replay needs the record's bytes)"
        )
    return value.encode("utf-8", "surrogateescape")


def _kcat_record(obj: dict[str, Any], number: int) -> InputRecord:
    """A record from kcat's envelope: the value bytes exactly as given, its coordinates."""
    topic = obj["topic"]
    if not isinstance(topic, str):
        raise ReplayInputError(f"line {number + 1}: kcat topic must be a string")
    for failed in ("key_error", "payload_error"):
        if failed in obj:
            raise ReplayInputError(f"line {number + 1}: kcat could not read it: {obj[failed]}")
    ts = obj.get("ts")
    timestamp = None
    if obj.get("tstype") in ("create", "logappend") and ts is not None and ts != -1:
        timestamp = _int(ts, "timestamp", number)
    return InputRecord(
        topic,
        _int(obj["partition"], "partition", number),
        _int(obj["offset"], "offset", number),
        timestamp,
        _bytes(obj.get("key"), "key", number),
        _bytes(obj["payload"], "payload", number),
        _kcat_headers(obj.get("headers"), number),
    )


def _kcat_headers(value: Any, number: int) -> list[tuple[str, bytes | None]]:
    """kcat's flat `["name", "value", ...]` array (repeated names kept in order), or the
    `{"name": ["value", ...]}` form of its header map option."""
    if value is None:
        return []
    pairs: list[tuple[Any, Any]]
    if isinstance(value, list) and len(value) % 2 == 0:
        pairs = list(zip(value[::2], value[1::2], strict=True))
    elif isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        pairs = [(name, v) for name, values in value.items() for v in values]
    else:
        raise ReplayInputError(
            f"line {number + 1}: kcat headers must be a flat array [name, value, ...]"
        )
    if not all(isinstance(name, str) for name, _ in pairs):
        raise ReplayInputError(f"line {number + 1}: kcat header names must be strings")
    return [(name, _bytes(v, "header value", number)) for name, v in pairs]


def _default_key(obj: dict[str, Any]) -> bytes | None:
    # Upstream producers key by instance id; a line without `key` gets the same.
    for candidate in (
        obj.get("id"),
        (obj.get("instance") or {}).get("id") if isinstance(obj.get("instance"), dict) else None,
    ):
        if isinstance(candidate, str):
            return candidate.encode()
    return None


_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1


def _int(value: Any, name: str, number: int) -> int:
    # Kafka's ranges: partitions are int32, offsets and timestamps int64, none negative.
    limit = _INT32_MAX if name == "partition" else _INT64_MAX
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ReplayInputError(f"line {number + 1}: {name} must be an integer from 0 to {limit}")
    return value


def _headers(value: Any, number: int) -> list[tuple[str, bytes | None]]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or v is None for v in value.values()
    ):
        raise ReplayInputError(f"line {number + 1}: headers must be an object of strings")
    return [(k, None if v is None else v.encode()) for k, v in value.items()]


@dataclass
class Summary:
    """What a replay did, by outcome and reason."""

    records: int = 0
    emitting: int = 0  # records that emitted events
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)

    def add(self, tallies: Tallies) -> None:
        self.records += tallies.records
        self.emitting += tallies.records - tallies.skipped.total() - tallies.dead.total()
        for (_, event_type), n in tallies.emitted.items():
            self.events[event_type] += n
        self.skipped.update(tallies.skipped)
        self.dead.update(tallies.dead)

    def text(self) -> str:
        def listed(counts: Counter[str]) -> str:
            return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))

        lines = [f"replay: {self.records} records"]
        if self.emitting:
            lines.append(
                f"  emitted       {self.emitting} records, {self.events.total()} events: "
                + listed(self.events)
            )
        if self.skipped:
            lines.append(f"  skipped       {self.skipped.total()}: {listed(self.skipped)}")
        if self.dead:
            lines.append(f"  dead letters  {self.dead.total()}: {listed(self.dead)}")
        return "\n".join(lines)


def replay(
    lines: Iterable[bytes],
    settings: Settings,
    *,
    with_state: bool = False,
    summary: Summary | None = None,
) -> Iterator[dict[str, Any]]:
    """The messages `run` would produce for these lines, as JSON-ready objects."""
    task = new_task(settings, native=False)  # the reference path
    for number, raw in enumerate(lines):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        record = parse_line(line, number, settings.input_topic)
        result = task.process(record)
        tallies, _ = task.commit()
        if summary is not None:
            summary.add(tallies)
        for message in result.messages:
            yield _message_json(message, events=result.outcome == "emit")
        if with_state and result.encoded is not None and result.key is not None:
            after = decode_state(result.encoded)
            state: dict[str, Any] = to_avro_dict(after)
            state["hash"] = after.hash.hex()
            state["attrDigests"] = after.attr_digests.hex()
            yield {
                "topic": settings.changelog_topic,
                "partition": record.partition,
                "key": result.key,
                "headers": {},
                "value": state,
            }


def _message_json(message: OutMessage, *, events: bool) -> dict[str, Any]:
    value: Any
    if message.value is None:
        value = None
    elif events:
        value = orjson.loads(message.value)
    else:
        value = message.value.decode("utf-8", "replace")
    return {
        "topic": message.topic,
        "partition": None if events else message.partition,
        "key": None if message.key is None else message.key.decode("utf-8", "replace"),
        "headers": {
            k: (None if v is None else v.decode("utf-8", "replace")) for k, v in message.headers
        },
        "value": value,
    }


def run_replay(
    source: BinaryIO,
    sink: BinaryIO,
    settings: Settings,
    *,
    with_state: bool = False,
    summary: Summary | None = None,
) -> int:
    count = 0
    for obj in replay(source, settings, with_state=with_state, summary=summary):
        sink.write(orjson.dumps(obj) + b"\n")
        count += 1
    sink.flush()
    return count
