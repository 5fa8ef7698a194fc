"""Peer implementations the benchmark compares the processor against.

- `passthrough`: the floor; a transactional consume→produce copy with no decoding or state.
- `quix`: the same job as the processor done with Quix Streams (stateful, exactly-once).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PeerResult"]


@dataclass(frozen=True)
class PeerResult:
    """What one peer run did. `seconds` runs from the first record consumed to the end."""

    name: str
    records_in: int
    records_out: int
    seconds: float
    records_per_s: float

    @classmethod
    def of(cls, name: str, records_in: int, records_out: int, seconds: float) -> PeerResult:
        """Build a result; the rate is input records per second (0 when nothing ran)."""
        rate = records_in / seconds if seconds > 0 else 0.0
        return cls(name, records_in, records_out, seconds, rate)
