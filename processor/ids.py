"""Deterministic event ids: UUIDv7 with the event time as timestamp
(docs/design.md#identity-and-determinism).

The 48-bit timestamp is the eventTime in ms; the other 74 bits come from BLAKE2b of the
record's coordinates (topic, partition, offset, index), so re-processing a record after a
crash yields the same ids while distinct records never share one.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import blake2b
from struct import Struct

_MAX_MS = (1 << 48) - 1
_COORDS = Struct(">qI")


@lru_cache(maxsize=1024)
def _hasher(topic: str, partition: int) -> blake2b:
    # The prefix absorbed once; copying the state is cheaper than hashing it again.
    return blake2b(f"{topic}\x00{partition}\x00".encode(), digest_size=10)


_LOW_76 = (1 << 76) - 1
_VARIANT_BITS = 0x3 << 62


def event_id(time_ms: int, topic: str, partition: int, offset: int, index: int) -> str:
    """The UUIDv7 of the `index`-th event of the record at (topic, partition, offset)."""
    ts = min(max(time_ms, 0), _MAX_MS)
    h = _hasher(topic, partition).copy()
    h.update(_COORDS.pack(offset, index))
    d = int.from_bytes(h.digest(), "big")  # 80 bits
    # 48-bit time, version 7, then the hash's bits with the variant 0b10 at bits 63..62
    value = (ts << 80) | (0x7 << 76) | (d & _LOW_76 & ~_VARIANT_BITS) | (1 << 63)
    x = f"{value:032x}"
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
