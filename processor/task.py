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

`process` takes one record; `take` takes every message of a consume() call, handing runs of
them to the C path in one call each (docs/native.md#the-batch-path) — it does for each
record exactly what `process` does.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message

from processor import native
from processor.config import Settings
from processor.core import Core
from processor.messages import OutMessage, Result
from processor.records import InputRecord, record_of, traceparent_of
from processor.state.model import State
from processor.state.store import StateStore
from processor.tmf import ENTITY_TYPES, KINDS, event_name


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
        # partition -> key -> (held form, changelog value): the newest state per changed key.
        self.staged: dict[int, dict[str, tuple[bytes, bytes]]] = {}
        self.offsets: dict[int, int] = {}  # partition -> next offset
        self.tallies = Tallies()
        self.taken = 0  # records the batch path's C calls took (their tallies are in C)
        self._native_at_start = core.native_records

    @property
    def records(self) -> int:
        return self.tallies.records + self.taken

    def process(self, record: InputRecord, *, native: bool = True) -> Result:
        """One record; `native=False`: the Python path even where the C path is built."""
        partition = record.partition
        key = _text(record.key)
        prior: bytes | None = None
        if key is not None:
            staged = self.staged.get(partition, {}).get(key)
            prior = self.store.get(partition, key) if staged is None else staged[0]
        result = self.core.process(record, key, prior, native=native)
        if result.stored is not None and result.key is not None:
            assert result.encoded is not None
            self.staged.setdefault(partition, {})[result.key] = (result.stored, result.encoded)
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

    def take(
        self,
        messages: list[Message],
        live: set[int],
        out: list[OutMessage],
        on_error: Callable[[KafkaError], None],
    ) -> None:
        """Every message of a consume() call, in order: the messages to produce are appended
        to `out`; messages of partitions not `live` are passed over (read again later); a
        consumer error goes to `on_error`."""
        engine = self.core.engine
        i, n = 0, len(messages)
        while i < n:
            if engine is not None:
                i, self.taken = engine.take(
                    messages, i, live, self.staged, self.store.partitions, out, self.offsets,
                    traceparent_of,
                )  # fmt: skip
                if i == n:
                    break
            msg = messages[i]  # one the C path does not answer: the Python path's
            i += 1
            err = msg.error()
            if err is not None:
                on_error(err)
            elif msg.partition() in live:
                out += self.process(record_of(msg), native=False).messages

    def state(self, partition: int, key: str) -> State | None:
        """The key's state as the next record would see it (staged, else stored), decoded."""
        staged = self.staged.get(partition, {}).get(key)
        if staged is None:
            return self.store.state(partition, key)
        return self.store.form.load(key, staged[0])

    def changelog(self) -> list[dict[str, Any]]:
        """The batch's changelog writes, one per changed key, as `produce_batch` takes them:
        to the changelog partition of the input partition's number."""
        return [
            {"partition": p, "key": key.encode(), "value": encoded}
            for p, part in self.staged.items()
            for key, (_, encoded) in part.items()
        ]

    def commit(self, owned: Container[int] | None = None) -> tuple[Tallies, set[int]]:
        """The batch committed: its staged states reach the store (of the partitions still
        `owned`, all when None). Returns its tallies and the partitions whose keys changed."""
        touched: set[int] = set()
        put = self.store.put
        for p, part in self.staged.items():
            if owned is None or p in owned:
                for key, (held, _) in part.items():
                    put(p, key, held)
                touched.add(p)
        tallies = self.tallies
        tallies.native = self.core.native_records - self._native_at_start
        self._add_taken(tallies)
        self._reset()
        return tallies, touched

    def _add_taken(self, tallies: Tallies) -> None:
        """The batch path's counts (kept in C until now) into `tallies`."""
        if self.core.engine is None:
            return
        records, consumed, outcomes, emitted, times = self.core.engine.tallies()  # resets
        tallies.records += records
        tallies.native += records
        topic = self.core.settings.input_topic
        for partition, n in consumed.items():
            tallies.consumed[(topic, partition)] += n
        for name, n in zip(native.OUTCOMES, outcomes, strict=True):
            if n and name != "emit":
                tallies.skipped[name] += n
        for entity_type, row in zip(ENTITY_TYPES, emitted, strict=True):
            for kind, n in zip(KINDS, row, strict=True):
                if n:
                    tallies.emitted[(entity_type, event_name(entity_type, kind))] += n
        tallies.times_ms += times

    def abort(self) -> None:
        """The batch aborted: forget its staged states, offsets and tallies."""
        if self.core.engine is not None:
            self.core.engine.tallies()  # the batch path's counts go with the batch
        self._reset()

    def _reset(self) -> None:
        self.staged = {}
        self.offsets = {}
        self.tallies = Tallies()
        self.taken = 0
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
