"""The `query` of a hub subscription: which events a listener gets.

TMF630-style filters as TMF listeners write them, joined by `&`:

- `eventType=ServiceStateChangeEvent,ServiceDeleteEvent` (or the name repeated:
  `eventType=A&eventType=B`): one of these event types;
- `event.service.state=active`, `event.resource.resourceStatus=alarm`: equality on a field of
  the event's payload (a dotted path; through a list, any element may match);
- `correlationId=...`, `domain=...`, `priority=...`, `title=...`, `fieldPath=...`: equality on
  a string member of the event envelope.

A name given twice, or one value list with commas, means any of them; different names must
all match. Spaces around `=` and `&` are ignored; names and values may be percent-encoded.
Anything else (other operators, `fields=`, unknown event types, paths into another entity)
is refused with the reason: a subscription never silently gets more than it asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

ENVELOPE_FIELDS = frozenset({"correlationId", "domain", "priority", "title", "fieldPath"})
_PATH_SEGMENT = re.compile(r"^[A-Za-z_@][A-Za-z0-9_@\-]*$")
_OPERATORS = re.compile(r"[<>!]|\.(gt|gte|lt|lte|ne|in|nin|regex)$")


class QueryError(ValueError):
    """A query the hub cannot honour; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed query: every condition must hold (an empty filter matches everything)."""

    event_types: frozenset[str] | None
    # (path, accepted values): the value at `path` must be one of them
    fields: tuple[tuple[tuple[str, ...], frozenset[str]], ...]

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.event_types is not None and event.get("eventType") not in self.event_types:
            return False
        return all(_any_equal(event, path, values) for path, values in self.fields)


MATCH_ALL = Filter(None, ())


def parse_query(query: str | None, entity_type: str, event_types: Sequence[str]) -> Filter:
    """The filter of `query` for a subscription to `entity_type` events, whose event names are
    `event_types`; raises QueryError for anything it does not support."""
    if query is None or not query.strip():
        return MATCH_ALL
    wanted_types: set[str] | None = None
    fields: dict[tuple[str, ...], set[str]] = {}
    for raw_term in query.split("&"):
        term = raw_term.strip()
        if not term:
            continue
        name, eq, raw = term.partition("=")
        name = unquote(name).strip()
        if _OPERATORS.search(name) or raw.startswith(("=", "<", ">", "!")):
            raise QueryError(f"query term {term!r}: only equality (name=value) is supported")
        if not eq:
            raise QueryError(f"query term {term!r} is not name=value")
        values = {unquote(v).strip() for v in raw.split(",")}
        if "" in values:
            raise QueryError(f"query term {term!r} has an empty value")
        if name == "eventType":
            unknown = sorted(values - set(event_types))
            if unknown:
                raise QueryError(
                    f"eventType {', '.join(unknown)} is not a {entity_type} event "
                    f"(one of {', '.join(event_types)})"
                )
            wanted_types = values if wanted_types is None else wanted_types | values
            continue
        fields.setdefault(_field_path(name, entity_type), set()).update(values)
    return Filter(
        None if wanted_types is None else frozenset(wanted_types),
        tuple((path, frozenset(v)) for path, v in sorted(fields.items())),
    )


def _field_path(name: str, entity_type: str) -> tuple[str, ...]:
    if name in ENVELOPE_FIELDS:
        return (name,)
    parts = tuple(name.split("."))
    if len(parts) >= 3 and parts[0] == "event" and parts[1] == entity_type:
        if all(_PATH_SEGMENT.match(p) for p in parts[2:]):
            return parts
        raise QueryError(f"query name {name!r} is not a dotted field path")
    if len(parts) >= 2 and parts[0] == "event":
        raise QueryError(
            f"query name {name!r}: this hub sends {entity_type} events, filter on "
            f"event.{entity_type}.<field>"
        )
    raise QueryError(
        f"query name {name!r} is not supported: use eventType, event.{entity_type}.<field> "
        f"or one of {', '.join(sorted(ENVELOPE_FIELDS))}"
    )


def _any_equal(node: Any, path: tuple[str, ...], values: frozenset[str]) -> bool:
    if not path:
        if isinstance(node, list):
            return any(_any_equal(item, path, values) for item in node)
        return _text(node) in values
    if isinstance(node, list):
        return any(_any_equal(item, path, values) for item in node)
    if not isinstance(node, dict) or path[0] not in node:
        return False
    return _any_equal(node[path[0]], path[1:], values)


def _text(value: Any) -> str | None:
    """A JSON scalar as a query writes it (true, 3, 2.5, text); None for objects and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return None
