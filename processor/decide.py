"""Which TMF events a change fires (docs/design.md#deciding). Pure: no clock, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from processor.canonical import (
    PrivateTree,
    attribute_names,
    changed_attributes,
    compile_private,
    digest,
    fingerprints,
    rendering,
    strip_private,
)
from processor.records import Change
from processor.state.model import State
from processor.tmf import OPERATING_STATUS, EventKind

Outcome = Literal[
    "emit", "unchanged", "stale", "unknown_delete", "disabled", "replayed", "mismatch", "invalid"
]
InstanceProblem = Callable[[str, dict[str, Any]], str | None]


@dataclass(slots=True, frozen=True)
class Planned:
    kind: EventKind
    changed: tuple[str, ...] = ()  # top-level attributes this event is about (sorted)
    removed: frozenset[str] = frozenset()  # of those, the ones no longer present


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    entity_type: str | None = None
    events: tuple[Planned, ...] = ()
    public: dict[str, Any] | None = None
    state: State | None = None  # the state after the change, before event ids are known
    message: str | None = None  # why an instance is invalid


@dataclass(slots=True, frozen=True)
class Policy:
    """The configuration decide needs, precomputed once."""

    private: PrivateTree
    state_fields: dict[str, frozenset[str]]
    enabled: frozenset[str]
    operating_status_event: bool  # v5: operatingStatus gets its own event for services
    problem: InstanceProblem | None = None  # what the event schema forbids in an instance

    @classmethod
    def build(
        cls,
        private_fields: list[str],
        state_fields: dict[str, list[str]],
        entity_types: list[str],
        tmf_version: str,
        problem: InstanceProblem | None = None,
    ) -> Policy:
        return cls(
            private=compile_private(private_fields),
            state_fields={t: frozenset(f) for t, f in state_fields.items()},
            enabled=frozenset(entity_types),
            operating_status_event=tmf_version == "v5",
            problem=problem,
        )


def decide(state: State | None, change: Change, offset: int, policy: Policy) -> Decision:
    entity_type = change.entity_type
    if state is not None:
        if entity_type is None:
            entity_type = state.entity_type
        elif entity_type != state.entity_type:
            return Decision("mismatch", entity_type)
        if offset <= state.offset:
            return Decision("replayed", entity_type)
    if entity_type is not None and entity_type not in policy.enabled:
        return Decision("disabled", entity_type)
    if state is not None and change.time_ms < state.observed_at:
        return Decision("stale", entity_type)

    if change.operation == "delete":
        if state is None or state.deleted:
            return Decision("unknown_delete", entity_type)
        after = State(
            entity_type=state.entity_type,
            version=state.version + 1,
            hash=b"",
            attr_names="",
            attr_digests=b"",
            deleted=True,
            observed_at=change.time_ms,
            offset=offset,
            href=state.href,
            at_type=state.at_type,
            last_event_id=state.last_event_id,
            last_event_type=state.last_event_type,
            last_event_time=state.last_event_time,
            events=state.events,
        )
        return Decision("emit", entity_type, (Planned("Delete"),), None, after)

    assert change.instance is not None and entity_type is not None
    public = strip_private(change.instance, policy.private)
    rendered = rendering(public)
    hashed = digest(rendered)
    if state is not None and not state.deleted and hashed == state.hash:
        return Decision("unchanged", entity_type)
    # Checked after the hash: an unchanged instance already passed.
    if policy.problem is not None:
        message = policy.problem(entity_type, public)
        if message is not None:
            return Decision("invalid", entity_type, message=message)
    names, digests = fingerprints(public)
    if state is None or state.deleted:
        planned: tuple[Planned, ...] = (Planned("Create"),)
    else:
        planned = _changes(
            changed_attributes(state.attr_names, state.attr_digests, names, digests),
            state,
            public,
            policy.state_fields[entity_type],
            policy,
            entity_type,
        )
    href = public.get("href")
    at_type = public.get("@type")
    after = State(
        entity_type=entity_type,
        version=(state.version if state is not None else 0) + 1,
        hash=hashed,
        attr_names=names,
        attr_digests=digests,
        deleted=False,
        observed_at=change.time_ms,
        offset=offset,
        href=href if isinstance(href, str) else None,
        at_type=at_type if isinstance(at_type, str) else None,
        last_event_id=state.last_event_id if state is not None else None,
        last_event_type=state.last_event_type if state is not None else None,
        last_event_time=state.last_event_time if state is not None else None,
        events=state.events if state is not None else (),
    )
    return Decision("emit", entity_type, planned, public, after)


def _changes(
    diff: tuple[set[str], set[str]] | None,
    state: State,
    public: dict[str, Any],
    state_fields: frozenset[str],
    policy: Policy,
    entity_type: str,
) -> tuple[Planned, ...]:
    """The events of an update whose digest changed: always at least one."""
    removed: set[str] = set()
    if diff is not None:
        changed, removed = diff
    if diff is None or not changed:
        # The 128-bit digest differs but no fingerprint does (or they cannot be read):
        # assume every name on either side moved rather than miss an event.
        changed = {*attribute_names(state.attr_names, state.attr_digests), *public}
    op_status = (
        policy.operating_status_event
        and entity_type == "service"
        and OPERATING_STATUS in changed
        and OPERATING_STATUS in state_fields
    )
    states = {k for k in changed & state_fields if not (op_status and k == OPERATING_STATUS)}
    attributes = changed - state_fields
    gone = frozenset(removed)
    out: list[Planned] = []
    if attributes:
        out.append(Planned("AttributeValueChange", tuple(sorted(attributes)), gone & attributes))
    if states:
        out.append(Planned("StateChange", tuple(sorted(states)), gone & states))
    if op_status:
        out.append(
            Planned(
                "OperatingStatusChange", (OPERATING_STATUS,), gone & frozenset((OPERATING_STATUS,))
            )
        )
    if not out:
        # No attribute on either side, yet a digest that moved (a state from elsewhere):
        # still one event, naming no attribute.
        out.append(Planned("AttributeValueChange"))
    return tuple(out)
