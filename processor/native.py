"""The C fast path of `Core.process` (processor/native/*.c) and the spec it is built from.

The engine takes a plain JSON upsert, delete or tombstone and the key's packed state and
returns what the Python path would return for it, byte for byte, or None for anything else
(dead letters, floats, escaped strings, rare state forms), which then takes the Python path.
The Python path is the reference: tests run both over the same records and compare every
byte.

It exists where the package was built with a C compiler and is used at `history` 1 with
JSON input, where the store keeps packed states (processor/state/packed.py).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from processor.config import Settings
from processor.instance_check import InstanceCheck, type_names
from processor.messages import OutMessage, Result
from processor.render import CONTENT_TYPE, SPEC, Renderer
from processor.state.packed import Profiles
from processor.tmf import ENTITY_NAME, ENTITY_TYPES, KINDS

_native: ModuleType | None
try:
    from processor import _native
except ImportError:  # built without a C compiler: the Python path does everything
    _native = None

AVAILABLE = _native is not None

#: The outcomes the engine counts in Engine.tallies(), in its order (native/contract.h).
OUTCOMES: tuple[str, ...] = tuple(_native.CONTRACT["outcomes"]) if _native is not None else ()

if TYPE_CHECKING:
    from processor._native import Engine


class MessageLimits(NamedTuple):
    """The producer's message size limit, and the bytes an event's headers, key and state
    framing may add to its value (processor/core.py)."""

    max_message_bytes: int
    headroom: int


# JSON Schema type names -> the engine's type bits (integer and number: the JSON integers
# the engine reads; floats take the Python path). processor/native/contract.h has them too.
TYPE_BITS = {
    "string": 1,
    "null": 2,
    "boolean": 4,
    "array": 8,
    "object": 16,
    "number": 32,
    "integer": 32,
}


def _rule(member: str | None, rule: dict[str, Any]) -> tuple[Any, ...]:
    """A member rule as processor/instance_check.py `_compile` reads it."""
    mask = 0
    for name in type_names(rule):
        mask |= TYPE_BITS[name]
    enum = rule.get("enum")
    # Non-string members of an enum only make the engine stricter: it hands the record on.
    strings = None if enum is None else [v for v in enum if isinstance(v, str)]
    nullable = enum is None or None in enum
    min_length = rule.get("minLength")
    items = _rule(None, rule["items"]) if "items" in rule else None
    return (
        member,
        mask,
        strings,
        nullable,
        -1 if min_length is None else int(min_length),
        items,
    )


def _json_str(raw: bytes) -> bytes:
    # What structured_cloudevent writes for a header value.
    return orjson.dumps(raw.decode("utf-8", "replace"))


def _unavailable(settings: Settings) -> str | None:
    """Why these settings leave the C fast path out, or None where it applies."""
    if _native is None:
        return "the C fast path was not built: no C compiler at install time"
    if settings.input_format != "json":
        return "the C fast path reads JSON input only"
    if settings.history != 1:
        return "the C fast path keeps no event history: history is above 1"
    return None


def describe(settings: Settings) -> str:
    """Which path the core takes with these settings (for the startup log)."""
    why = _unavailable(settings)
    return "C fast path" if why is None else f"Python path ({why})"


def build_engine(
    settings: Settings,
    renderer: Renderer,
    check: InstanceCheck,
    profiles: Profiles,
    limits: MessageLimits,
) -> Engine | None:
    """The engine for these settings, or None where the fast path does not apply.

    `profiles` is the store's table of packed-state profiles, which the engine reads and
    interns into; `limits` the core's own, so that both paths hand a record to the size
    check at the same point.
    """
    if _native is None or _unavailable(settings) is not None:
        return None
    constants = orjson.dumps(renderer.constants)[1:-1]
    entity_types: dict[str, dict[str, Any]] = {}
    for entity_type in ENTITY_TYPES:
        events: list[tuple[Any, ...] | None] = []
        for kind in KINDS:
            const = renderer.consts.get((entity_type, kind))
            if const is None:
                events.append(None)
                continue
            events.append(
                (
                    const.name,
                    const.topic,
                    ("ce_type", const.ce_type),
                    ("ce_dataschema", const.dataschema),
                    _json_str(const.ce_type),
                    _json_str(const.dataschema),
                )
            )
        entity_types[entity_type] = {
            "name": entity_type,
            "enabled": entity_type in settings.entity_types,
            "default_type": ENTITY_NAME[entity_type],
            "state_fields": list(settings.state_fields.get(entity_type, [])),
            "rules": [_rule(m, r) for m, r in check.properties[entity_type].items()],
            "events": events,
        }
    engine: Engine = _native.Engine(
        {
            "v5": renderer.v5,
            "delta": renderer.delta,
            "max_record_bytes": settings.max_record_bytes,
            "max_message_bytes": limits.max_message_bytes,
            "headroom": limits.headroom,
            "max_json_depth": settings.max_json_depth,
            "input_topic": settings.input_topic,
            "source_json": _json_str(renderer.source[1]),
            "constants_json": constants + b"," if constants else b"",
            "entity_ref_json": orjson.dumps(renderer.entity_ref),
            "spec_header": SPEC,
            "source_header": renderer.source,
            "content_type_header": CONTENT_TYPE,
            "out_message": OutMessage,
            "result": Result,
            "profiles": profiles,
            "private": list(settings.private_fields),
            "entity_types": entity_types,
        }
    )
    return engine
