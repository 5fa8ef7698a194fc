"""What the core hands to the shell: Kafka messages to produce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OutMessage:
    topic: str
    partition: int | None  # None: the producer's partitioner decides (by key)
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
