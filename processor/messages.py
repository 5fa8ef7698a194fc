"""What the core hands to the shell: Kafka messages to produce."""

from __future__ import annotations

from typing import NamedTuple


class OutMessage(NamedTuple):
    # A tuple: the C path (processor/native) builds it without running Python code.
    topic: str
    partition: int | None  # None: the producer's partitioner decides (by key)
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
