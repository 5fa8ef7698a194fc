"""The event schemas' rules for well-known instance members, compiled to plain checks.

Every emitted event must validate against the schema its `ce_dataschema` names, so an
instance whose well-known members break that schema (a `state` outside the TMF enum, a
numeric `href`) is bad input, dead-lettered as `schema_violation`. The rules are read from
the shipped schemas themselves, so the two cannot drift; checking them costs a few dict
look-ups instead of a JSON Schema validation per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processor.schemas import event_schema_id, load_json_schema
from processor.tmf import ENTITY_NAME

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "null": (type(None),),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "number": (int, float),
    "integer": (int,),
}

Check = Callable[[Any], str | None]


def type_names(rule: dict[str, Any]) -> list[str]:
    """A rule's JSON types as a list (`type` may be one name or several)."""
    names = rule.get("type", [])
    return [names] if isinstance(names, str) else list(names)


def _compile(rule: dict[str, Any]) -> Check:
    names = type_names(rule)
    types = tuple(t for n in names for t in _JSON_TYPES[n])
    enum = rule.get("enum")
    allowed = None if enum is None else frozenset(v for v in enum if v is not None)
    nullable = enum is None or None in enum
    items = _compile(rule["items"]) if "items" in rule else None
    min_length = rule.get("minLength")
    strict_number = "boolean" not in names  # bool is an int subclass in Python, not in JSON

    def check(value: Any) -> str | None:
        if types and (not isinstance(value, types) or (strict_number and isinstance(value, bool))):
            return f"must be {' or '.join(names)}"
        if allowed is not None and not (value is None and nullable) and value not in allowed:
            return f"must be one of {', '.join(sorted(map(str, allowed)))}"
        if min_length is not None and isinstance(value, str) and len(value) < min_length:
            return f"must have at least {min_length} characters"
        if items is not None and isinstance(value, list):
            for i, item in enumerate(value):
                problem = items(item)
                if problem is not None:
                    return f"[{i}] {problem}"
        return None

    return check


# (member, exact types accepted at a glance, values accepted at a glance or None, full check)
_Rule = tuple[str, frozenset[type], frozenset[Any] | None, Check]
_MISSING = object()


def _fast_path(rule: dict[str, Any]) -> tuple[frozenset[type], frozenset[Any] | None]:
    """What can be accepted by one type look-up and one set look-up (nothing, for arrays)."""
    if "items" in rule or "minLength" in rule:
        return frozenset(), None
    names = type_names(rule)
    types = frozenset(t for n in names if n not in ("number", "integer") for t in _JSON_TYPES[n])
    enum = rule.get("enum")
    return types, None if enum is None else frozenset(enum)


class InstanceCheck:
    """Per entity type, the member rules of the profile's Create event schema."""

    def __init__(self, tmf_version: str) -> None:
        self.rules: dict[str, tuple[_Rule, ...]] = {}
        self.properties: dict[str, dict[str, Any]] = {}  # the schemas' rules (the C path's too)
        for entity_type, name in ENTITY_NAME.items():
            schema = load_json_schema(
                event_schema_id(entity_type, tmf_version, f"{name}CreateEvent")
            )
            props = schema["$defs"][name]["properties"]
            self.properties[entity_type] = props
            self.rules[entity_type] = tuple(
                (member, *_fast_path(rule), _compile(rule)) for member, rule in props.items()
            )

    def problem(self, entity_type: str, public: dict[str, Any]) -> str | None:
        get = public.get
        for member, types, allowed, check in self.rules[entity_type]:
            value = get(member, _MISSING)
            if value is _MISSING:
                continue
            if type(value) in types and (allowed is None or value in allowed):
                continue
            result = check(value)
            if result is not None:
                return f"instance.{member} {result} (got {_short(value)})"
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
