"""`tmf-events replay`: change records from JSON Lines in, the processor's messages out.

No Kafka: each line stands in for one Kafka record (docs/design.md#interfaces) and goes through
`Core`, the same code path as `run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from processor.config import Settings
from processor.messages import OutMessage
from processor.records import InputRecord
from processor.state.codec import decode_state, to_avro_dict
from processor.task import new_task

_RECORD_MEMBERS = ("key", "partition", "offset", "timestamp", "headers")


class ReplayInputError(ValueError):
    """A line whose Kafka-record members (key, partition, ...) have the wrong type."""


def parse_line(line: bytes, number: int, topic: str) -> InputRecord:
    """Turn one input line (without its newline) into the Kafka record it stands for."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
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


def replay(
    lines: Iterable[bytes], settings: Settings, *, with_state: bool = False
) -> Iterator[dict[str, Any]]:
    """The messages `run` would produce for these lines, as JSON-ready objects."""
    task = new_task(settings, native=False)  # the reference path
    for number, raw in enumerate(lines):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        record = parse_line(line, number, settings.input_topic)
        result = task.process(record)
        task.commit()
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
    source: BinaryIO, sink: BinaryIO, settings: Settings, *, with_state: bool = False
) -> int:
    count = 0
    for obj in replay(source, settings, with_state=with_state):
        sink.write(orjson.dumps(obj) + b"\n")
        count += 1
    sink.flush()
    return count
