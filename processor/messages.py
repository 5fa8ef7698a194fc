"""What the core hands to the shell: Kafka messages to produce, and a record's result.

Both are named tuples: the C path (processor/native) builds them without running Python
code, by position, so their field order is part of its contract (checked by a test).
"""

from __future__ import annotations

from typing import NamedTuple


class OutMessage(NamedTuple):
    """A Kafka message to produce."""

    topic: str
    partition: int | None  # None: the producer's partitioner decides (by key)
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class Result(NamedTuple):
    """What one input record did."""

    # emit | unchanged | stale | unknown_delete | disabled | replayed | dead_letter
    outcome: str
    messages: list[OutMessage]
    key: str | None = None
    entity_type: str | None = None
    event_types: tuple[str, ...] = ()
    reason: str | None = None  # the dead-letter reason
    time_ms: int | None = None  # the event time, for the end-to-end latency
    # Set when the record changed its key's state: the new state as the store holds it
    # (processor/state/store.py StateForm) and as the changelog carries it.
    stored: bytes | None = None
    encoded: bytes | None = None
