"""The task: records through the core between two commits, with their state staged.

Every caller of the core — the processor's loop, `replay`, the benchmarks and the tests —
goes through a `Task`, so the state protocol is written once:

1. look up the record key's prior state: the newest one staged by this batch (read your
   own writes), else the store's;
2. process the record (processor/core.py);
3. stage the state it produced, keyed by (partition, key), and remember the partition's
   next offset;
4. `commit()` once the batch's transaction has committed: the staged states reach the store
   (only for partitions still owned) and the batch's tallies are handed over; `abort()`
   drops them, leaving the store exactly as the changelog has it.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from processor.config import Settings
from processor.core import Core
from processor.messages import Result
from processor.records import InputRecord
from processor.state.model import State
from processor.state.store import StateStore


@dataclass(slots=True)
class Tallies:
    """What a committed batch did, for the metrics and the progress log."""

    records: int = 0
    consumed: Tally[tuple[str, int]] = field(default_factory=Tally)  # (topic, partition)
    emitted: Tally[tuple[str, str]] = field(default_factory=Tally)  # (entity, event type)
    skipped: Tally[str] = field(default_factory=Tally)  # outcome
    dead: Tally[str] = field(default_factory=Tally)  # reason
    native: int = 0  # records the C path took
    times_ms: list[int] = field(default_factory=list)  # event times of emitting records


class Task:
    """One consumer's records between two commits, over its store's partitions."""

    def __init__(self, core: Core, store: StateStore) -> None:
        if core.form is not store.form:
            raise ValueError("the core must write states in its store's form")
        self.core = core
        self.store = store
        # (partition, key) -> (held form, changelog value): the newest state per changed key.
        self.staged: dict[tuple[int, str], tuple[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}  # partition -> next offset
        self.tallies = Tallies()
        self._native_at_start = core.native_records

    @property
    def records(self) -> int:
        return self.tallies.records

    def process(self, record: InputRecord) -> Result:
        partition = record.partition
        key = _text(record.key)
        prior: bytes | None = None
        if key is not None:
            staged = self.staged.get((partition, key))
            prior = self.store.get(partition, key) if staged is None else staged[0]
        result = self.core.process(record, key, prior)
        if result.stored is not None and result.key is not None:
            assert result.encoded is not None
            self.staged[(partition, result.key)] = (result.stored, result.encoded)
        self.offsets[partition] = record.offset + 1
        t = self.tallies
        t.records += 1
        t.consumed[(record.topic, partition)] += 1
        outcome = result.outcome
        if outcome == "emit":
            entity_type = result.entity_type or ""
            for name in result.event_types:
                t.emitted[(entity_type, name)] += 1
            if result.time_ms is not None:
                t.times_ms.append(result.time_ms)
        elif outcome == "dead_letter":
            t.dead[result.reason or "unknown"] += 1
        else:
            t.skipped[outcome] += 1
        return result

    def state(self, partition: int, key: str) -> State | None:
        """The key's state as the next record would see it (staged, else stored), decoded."""
        staged = self.staged.get((partition, key))
        if staged is None:
            return self.store.state(partition, key)
        return self.store.form.load(key, staged[0])

    def changelog(self) -> list[dict[str, Any]]:
        """The batch's changelog writes, one per changed key, as `produce_batch` takes them:
        to the changelog partition of the input partition's number."""
        return [
            {"partition": p, "key": key.encode(), "value": encoded}
            for (p, key), (_, encoded) in self.staged.items()
        ]

    def commit(self, owned: Container[int] | None = None) -> tuple[Tallies, set[int]]:
        """The batch committed: its staged states reach the store (of the partitions still
        `owned`, all when None). Returns its tallies and the partitions whose keys changed."""
        touched: set[int] = set()
        put = self.store.put
        for (p, key), (held, _) in self.staged.items():
            if owned is None or p in owned:
                put(p, key, held)
                touched.add(p)
        tallies = self.tallies
        tallies.native = self.core.native_records - self._native_at_start
        self._reset()
        return tallies, touched

    def abort(self) -> None:
        """The batch aborted: forget its staged states, offsets and tallies."""
        self._reset()

    def _reset(self) -> None:
        self.staged = {}
        self.offsets = {}
        self.tallies = Tallies()
        self._native_at_start = self.core.native_records


def _text(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def new_task(settings: Settings, *, native: bool = True) -> Task:
    """A task over a fresh store in the form these settings keep states in: the changelog
    value when events are read back (`history` above 1), else packed. `native=False` keeps
    the C path out (the reference path, as `replay` runs it)."""
    store = StateStore(keep_events=settings.history > 1)
    return Task(Core(settings, store.form, native=native), store)
