"""The processor's in-memory state per input partition; the changelog is its durable copy.

Every entry is bytes in one form, the store's `StateForm`: the changelog value itself when
events are read back (`history` above 1), else the packed form (processor/state/packed.py,
~90 B a key instead of ~325 B).
"""

from __future__ import annotations

from processor.state.codec import decode_state
from processor.state.model import State
from processor.state.packed import Profiles, pack, pack_changelog, unpack


class StateForm:
    """How a key's state is held in memory, and the profile table of the packed form.

    The core writes states in this form and reads them back through it; the C path reads
    and writes the packed form directly, with this table.
    """

    def __init__(self, keep_events: bool) -> None:
        self.keep_events = keep_events
        self.profiles = Profiles()

    @property
    def packed(self) -> bool:
        return not self.keep_events

    def store(self, key: str, state: State, encoded: bytes) -> bytes:
        """The held form of a state whose changelog value is `encoded`."""
        return encoded if self.keep_events else pack(key, state, self.profiles)

    def load(self, key: str, held: bytes) -> State:
        return decode_state(held) if self.keep_events else unpack(key, held, self.profiles)

    def from_changelog(self, key: str, value: bytes) -> bytes:
        return value if self.keep_events else pack_changelog(key, value, self.profiles)


class StateStore:
    """Entries per partition and key, each in the form of `self.form`."""

    def __init__(self, keep_events: bool = True) -> None:
        self.form = StateForm(keep_events)
        self.partitions: dict[int, dict[str, bytes]] = {}

    @property
    def keep_events(self) -> bool:
        return self.form.keep_events

    def get(self, partition: int, key: str) -> bytes | None:
        part = self.partitions.get(partition)
        return None if part is None else part.get(key)

    def state(self, partition: int, key: str) -> State | None:
        """The key's state, decoded (for replay's output and for tests)."""
        held = self.get(partition, key)
        return None if held is None else self.form.load(key, held)

    def put(self, partition: int, key: str, held: bytes) -> None:
        self.partitions.setdefault(partition, {})[key] = held

    def put_changelog(self, partition: int, key: str, value: bytes | None) -> None:
        """A changelog record (None: a tombstone)."""
        part = self.partitions.setdefault(partition, {})
        if value is None:
            part.pop(key, None)
        else:
            part[key] = self.form.from_changelog(key, value)

    def entries(self, partition: int) -> dict[str, bytes]:
        return self.partitions.get(partition, {})

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def keys(self, partition: int) -> int:
        return len(self.partitions.get(partition, ()))
