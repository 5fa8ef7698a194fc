"""Deterministic event ids: UUIDv7 with the event time as timestamp (DESIGN §5).

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
def _prefix(topic: str, partition: int) -> bytes:
    return f"{topic}\x00{partition}\x00".encode()


def event_id(time_ms: int, topic: str, partition: int, offset: int, index: int) -> str:
    ts = min(max(time_ms, 0), _MAX_MS)
    d = blake2b(_prefix(topic, partition) + _COORDS.pack(offset, index), digest_size=10).digest()
    # version 7 in the high nibble of byte 6, variant 0b10 in the top bits of byte 8
    raw = ts.to_bytes(6, "big") + bytes((0x70 | (d[0] & 0x0F), d[1], 0x80 | (d[2] & 0x3F))) + d[3:]
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
