"""Check an emitted event against the JSON Schema its `ce_dataschema` header names
(docs/design.md#output-tmf-events-as-cloudevents).

Shared by unit and integration tests::

    from tests.schema_check import assert_valid_event

    event = assert_valid_event(message)  # returns the event value as a dict

`message` may be anything that carries the headers and the value of one event:

- a `processor.messages.OutMessage` (`.headers` list of pairs, `.value` bytes),
- a confluent-kafka `Message` (`.headers()` / `.value()` methods),
- a cloudevents `KafkaMessage` (`.headers` dict, `.value` bytes),
- a replay output object `{"headers": {...}, "value": {...}}` (or its JSON text / bytes),
- a `(headers, value)` pair.

Header values may be `bytes` (they must be UTF-8, as the CloudEvents Kafka binding says) or
`str`; the value may be bytes, str or an already parsed dict. Header names must be unique.
Besides the schema, the check makes sure the headers and the value tell the same story:
`ce_id` = `eventId`, `ce_time` = `eventTime`, `ce_type` ends in `.<eventType>`, and
`content-type` is `application/json`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from processor.schemas import load_json_schema

__all__ = ["assert_valid_event", "event_headers", "validator_for"]


@lru_cache(maxsize=64)
def validator_for(schema_id: str) -> Draft202012Validator:
    """The (cached) validator of one event schema, by its `$id`."""
    schema = load_json_schema(schema_id)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            # CloudEvents Kafka binding: header keys and values MUST be UTF-8.
            raise AssertionError(f"header {name!r} is not UTF-8: {bytes(value)!r}") from None
    return str(value)


def _pairs(headers: Any) -> list[tuple[str, str | None]]:
    if headers is None:
        return []
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), _text(str(k), v)) for k, v in items]


def event_headers(headers: Any) -> dict[str, str | None]:
    """Headers (dict or list of pairs, bytes or str values) as a dict of str; no duplicates."""
    pairs = _pairs(headers)
    out = dict(pairs)
    names = [k for k, _ in pairs]
    dupes = sorted({k for k in names if names.count(k) > 1})
    assert not dupes, f"duplicate event headers {dupes}"
    return out


def _split(message: Any) -> tuple[Any, Any]:
    if isinstance(message, bytes | bytearray | str):
        message = orjson.loads(message)
    if isinstance(message, tuple) and len(message) == 2:
        return message
    if isinstance(message, Mapping):
        return message.get("headers"), message.get("value")
    headers = message.headers
    value = message.value
    return (headers() if callable(headers) else headers), (value() if callable(value) else value)


def assert_valid_event(message_or_json: Any) -> dict[str, Any]:
    """Assert that one emitted event is valid; return its value (the TMF event) as a dict."""
    raw_headers, raw_value = _split(message_or_json)
    headers = event_headers(raw_headers)
    schema_id = headers.get("ce_dataschema")
    assert schema_id, f"event without a ce_dataschema header: {sorted(headers)}"
    assert raw_value is not None, f"event {headers.get('ce_id')} has no value"
    event = dict(raw_value) if isinstance(raw_value, Mapping) else orjson.loads(raw_value)
    assert isinstance(event, dict), f"event value is not a JSON object: {event!r}"

    errors = sorted(
        validator_for(schema_id).iter_errors(event), key=lambda e: list(e.absolute_path)
    )
    if errors:
        lines = [
            f"  at /{'/'.join(str(p) for p in err.absolute_path)}: {err.message}" for err in errors
        ]
        pretty = orjson.dumps(event, option=orjson.OPT_INDENT_2).decode()
        raise AssertionError(
            f"event {headers.get('ce_id')} violates {schema_id}:\n"
            + "\n".join(lines)
            + f"\nevent:\n{pretty}"
        )

    assert headers.get("ce_id") == event.get("eventId"), "ce_id differs from eventId"
    assert headers.get("ce_time") == event.get("eventTime"), "ce_time differs from eventTime"
    ce_type = headers.get("ce_type") or ""
    assert ce_type.endswith(f".{event.get('eventType')}"), (
        f"ce_type {ce_type!r} does not name the event type {event.get('eventType')!r}"
    )
    assert headers.get("content-type") == "application/json", "content-type is not JSON"
    return event
