"""Decoding of change records (docs/design.md#input-change-records): Kafka record in, `Change` or
`Rejection` out.

Every way a record can be bad maps to a stable reason code; nothing here raises on bad input.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from processor.timefmt import InvalidTimestampError, in_range, parse_ms
from processor.tmf import ENTITY_TYPES

Header = tuple[str, bytes | None]

REASONS = (
    "invalid_utf8",
    "invalid_json",
    "schema_violation",
    "missing_key",
    "id_mismatch",
    "missing_instance",
    "unknown_entity_type",
    "entity_type_mismatch",
    "invalid_timestamp",
    "missing_timestamp",
    "too_large",
    "too_deep",
    "invalid_avro",
    "duplicate_member",
)

# orjson writes at most 254 nested arrays and objects, and an event nests the instance one
# level deeper than a JSON record does (two deeper than an Avro record's instance text):
# deeper input could be read but never written, so it is too deep whatever the settings say.
WRITABLE_DEPTH = 253


@dataclass(slots=True)
class InputRecord:
    """A consumed Kafka record as the core sees it (the shell converts client messages)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)


@dataclass(slots=True)
class Change:
    """A valid change of one instance."""

    key: str
    entity_type: str | None  # None only for tombstones: the stored state knows it
    operation: Literal["upsert", "delete"]
    time_ms: int
    correlation_id: str | None
    instance: dict[str, Any] | None
    traceparent: bytes | None


@dataclass(slots=True, frozen=True)
class Rejection:
    """Bad input: goes to the dead-letter topic with this reason."""

    reason: str
    message: str


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    entityType: StrictStr  # noqa: N815 - the wire name
    operation: Literal["upsert", "delete"] = "upsert"
    id: StrictStr | None = None
    observedAt: StrictStr | None = None  # noqa: N815
    correlationId: StrictStr | None = None  # noqa: N815
    instance: Any = None


_ENTITY_TYPES = frozenset(ENTITY_TYPES)


@dataclass(slots=True, frozen=True)
class Decoder:
    """Decodes values of one input format within the configured limits."""

    input_format: Literal["json", "avro"] = "json"
    max_record_bytes: int = 1024 * 1024
    max_json_depth: int = 64

    def decode(self, record: InputRecord) -> Change | Rejection:
        value = record.value
        if value is not None:
            # The value's own faults first: they say more than a missing key does.
            if len(value) > self.max_record_bytes:
                return Rejection(
                    "too_large", f"value is {len(value)} bytes, limit {self.max_record_bytes}"
                )
            parsed = (
                self._parse_avro(value) if self.input_format == "avro" else self._parse_json(value)
            )
            if isinstance(parsed, Rejection):
                return parsed
        if record.key is None or record.key == b"":
            return Rejection("missing_key", "record has no key (the key must be the instance id)")
        try:
            key = record.key.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection("invalid_utf8", f"key is not valid UTF-8: {exc.reason}")
        traceparent = traceparent_of(record.headers)
        if value is None:
            if record.timestamp_ms is None or record.timestamp_ms < 0:
                return Rejection("missing_timestamp", "tombstone without a record timestamp")
            if not in_range(record.timestamp_ms):
                return Rejection("invalid_timestamp", "record timestamp after year 9999")
            return Change(key, None, "delete", record.timestamp_ms, None, None, traceparent)
        return self._validate(key, parsed, record.timestamp_ms, traceparent)

    def _parse_json(self, value: bytes, writable: int = WRITABLE_DEPTH) -> Any:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return _classify_json_error(value, exc)
        limit = min(self.max_json_depth, writable)
        # Depth can only exceed the limit if there are that many brackets at all.
        if value.count(b"{") + value.count(b"[") > limit and _too_deep(parsed, limit):
            return Rejection("too_deep", f"JSON nesting deeper than {limit}")
        if _repeats_a_member(value, parsed):
            return Rejection("duplicate_member", "an object names a member twice")
        return parsed

    def _parse_avro(self, value: bytes) -> Any:
        from processor.schemas import load_avro_schema

        body = value[5:] if len(value) > 5 and value[0] == 0 else value  # Confluent wire format
        try:
            import fastavro

            rec = fastavro.schemaless_reader(io.BytesIO(body), load_avro_schema("change-record"))
        except Exception as exc:  # fastavro raises many types on corrupt input
            return Rejection("invalid_avro", f"cannot decode Avro change record: {exc}"[:500])
        if not isinstance(rec, dict):
            return Rejection("invalid_avro", "Avro value is not a record")
        instance_text = rec.get("instance")
        envelope = {k: v for k, v in rec.items() if v is not None and k != "instance"}
        if instance_text is not None:
            inner = self._parse_json(instance_text.encode("utf-8"), WRITABLE_DEPTH - 1)
            if isinstance(inner, Rejection):
                return inner
            envelope["instance"] = inner
        return envelope

    def _validate(
        self, key: str, parsed: Any, timestamp_ms: int | None, traceparent: bytes | None
    ) -> Change | Rejection:
        if not isinstance(parsed, dict):
            return Rejection("schema_violation", "change record must be a JSON object")
        if not _envelope_ok(parsed):
            # The pydantic model is the authority on what is wrong with an envelope.
            try:
                parsed = _Envelope.model_validate(parsed).model_dump()
            except ValidationError as exc:
                return Rejection("schema_violation", _first_error(exc))
        entity_type: str = parsed["entityType"]
        operation: Literal["upsert", "delete"] = parsed.get("operation") or "upsert"
        if entity_type not in _ENTITY_TYPES:
            return Rejection(
                "unknown_entity_type",
                f"entityType {entity_type[:64]!r} is not 'service' or 'resource'",
            )
        record_id = parsed.get("id")
        if record_id is not None and record_id != key:
            return Rejection("id_mismatch", "record id differs from the key")
        instance = parsed.get("instance")
        if instance is None:
            if operation == "upsert":
                return Rejection("missing_instance", "an upsert must carry the instance")
        else:
            if not isinstance(instance, dict):
                return Rejection("schema_violation", "instance must be a JSON object")
            instance_id = instance.get("id")
            if not isinstance(instance_id, str):
                return Rejection("schema_violation", "instance must carry a string id")
            if instance_id != key:
                return Rejection("id_mismatch", "instance.id differs from the key")
        observed_at = parsed.get("observedAt")
        if observed_at is not None:
            try:
                time_ms = parse_ms(observed_at)
            except InvalidTimestampError as exc:
                return Rejection("invalid_timestamp", str(exc))
            if not in_range(time_ms):
                return Rejection(
                    "invalid_timestamp",
                    f"observedAt {observed_at[:64]!r} is before 1970 or after 9999",
                )
        elif timestamp_ms is not None and timestamp_ms >= 0:
            if not in_range(timestamp_ms):
                return Rejection("invalid_timestamp", "record timestamp after year 9999")
            time_ms = timestamp_ms
        else:
            return Rejection("missing_timestamp", "no observedAt and no record timestamp")
        return Change(
            key,
            entity_type,
            operation,
            time_ms,
            parsed.get("correlationId"),
            instance if operation == "upsert" else None,
            traceparent,
        )


_MEMBERS = frozenset(_Envelope.model_fields)
_OPTIONAL_STRINGS = ("id", "observedAt", "correlationId")


def _envelope_ok(parsed: dict[str, Any]) -> bool:
    """What `_Envelope` accepts, checked without building errors (pydantic costs ~3 µs)."""
    if not _MEMBERS.issuperset(parsed) or type(parsed.get("entityType")) is not str:
        return False
    if parsed.get("operation", "upsert") not in ("upsert", "delete"):
        return False
    for name in _OPTIONAL_STRINGS:
        value = parsed.get(name)
        if value is not None and type(value) is not str:
            return False
    return True


_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")


class KafkaMessage(Protocol):
    """What a consumed confluent_kafka.Message offers (the shell reads records through it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...  # a list of (name, value) pairs, or None


_TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


def record_of(msg: KafkaMessage) -> InputRecord:
    """The record a consumed message stands for."""
    ts_type, ts = msg.timestamp()
    return InputRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=None if ts_type == _TIMESTAMP_NOT_AVAILABLE else ts,
        key=msg.key(),
        value=msg.value(),
        headers=list(msg.headers() or ()),
    )


def traceparent_of(headers: list[Header]) -> bytes | None:
    """The W3C traceparent to copy onto events; a malformed one is not propagated."""
    for k, v in headers:
        if k == "traceparent":
            return v if v is not None and _TRACEPARENT.match(v) else None
    return None


def _classify_json_error(value: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection("invalid_utf8", f"value is not valid UTF-8 at byte {err.start}")
    if "depth limit" in str(exc) or "recursion" in str(exc):
        return Rejection("too_deep", "JSON nesting exceeds the parser's limit")
    return Rejection("invalid_json", f"invalid JSON: {exc}"[:500])


def _repeats_a_member(text: bytes, parsed: Any) -> bool:
    """Whether an object of the JSON `text` names a member twice (orjson kept the last).

    Writing `parsed` back gives every member of `text` again, unless a name was repeated:
    then fewer. Members are counted by their colons (outside strings, a colon follows every
    member name and nothing else). In text without escapes the strings come back as the same
    bytes, colons included, so counting all colons is exact; text with escapes (where a
    string may spell a colon `\\u003a`) has the colons inside strings left out.
    """
    again = orjson.dumps(parsed)
    if b"\\" not in text:
        return text.count(b":") != again.count(b":")
    return _members(text) != _members(again)


def _members(text: bytes) -> int:
    """The member names in valid JSON text: its colons outside strings. Escaped backslashes,
    then escaped quotes, are dropped first (left to right, as a reader pairs them), so every
    quote left opens or closes a string."""
    text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(text.split(b'"')[::2]).count(b":")


def _too_deep(node: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']}"
