"""The processor's in-memory state per input partition; the changelog is its durable copy."""

from __future__ import annotations

from processor.compact import pack, pack_avro, unpack
from processor.state import State, decode_state, encode_state

# What `packed` returns for a key whose state is not held packed (no packed entry is empty).
NOT_PACKED = b""


class StateStore:
    """Entries per partition and key.

    With `keep_events` (`history` above 1) an entry is its changelog value, Avro with the
    stored events, decoded on each read. Without (`history` 1: events are only ever written,
    never read back) it is packed (processor/compact.py): ~70 B instead of ~325 B a key. A
    `State` put directly (replay, tests) is kept as the object when events are kept.
    """

    def __init__(self, keep_events: bool = True) -> None:
        self.partitions: dict[int, dict[str, State | bytes]] = {}
        self.keep_events = keep_events

    def get(self, partition: int, key: str) -> State | None:
        part = self.partitions.get(partition)
        if part is None:
            return None
        value = part.get(key)
        if value is None or isinstance(value, State):
            return value
        return decode_state(value) if self.keep_events else unpack(key, value)

    def packed(self, partition: int, key: str) -> bytes | None:
        """The key's packed state for the C path: None when it has no state, NOT_PACKED when
        the store keeps its states another way."""
        if self.keep_events:
            return NOT_PACKED
        part = self.partitions.get(partition)
        if part is None:
            return None
        value = part.get(key)
        return value if value is None or isinstance(value, bytes) else NOT_PACKED

    def put_packed(self, partition: int, key: str, packed: bytes) -> None:
        """A state the C path packed (only ever with `keep_events` off)."""
        self.partitions.setdefault(partition, {})[key] = packed

    def put_raw(self, partition: int, key: str, data: bytes | None) -> None:
        """A changelog value (None: a tombstone)."""
        part = self.partitions.setdefault(partition, {})
        if data is None:
            part.pop(key, None)
        else:
            part[key] = data if self.keep_events else pack_avro(key, data)

    def put(self, partition: int, key: str, state: State, encoded: bytes | None = None) -> None:
        """A state, with its changelog value when it was just encoded for the changelog."""
        part = self.partitions.setdefault(partition, {})
        if not self.keep_events:
            part[key] = pack(key, state)
        else:
            part[key] = encoded if encoded is not None else state

    def encoded(self, partition: int) -> dict[str, bytes]:
        """The partition's entries, every one as bytes (as the processor stores them)."""
        part = self.partitions.get(partition, {})
        out: dict[str, bytes] = {}
        for key, value in part.items():
            if not isinstance(value, State):
                out[key] = value
            else:
                out[key] = encode_state(value) if self.keep_events else pack(key, value)
        return out

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def keys(self, partition: int) -> int:
        return len(self.partitions.get(partition, ()))
