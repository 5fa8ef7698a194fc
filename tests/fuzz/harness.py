"""The fuzz oracle: fuzz bytes → a settings case and a sequence of records on a few keys, run
through the C path and the Python path side by side (docs/native.md#the-fuzzer).

`check(data)` is the whole target: it raises `DisagreementError` when the two paths answer
differently, and lets any exception of either path through, so a raise is a finding as much
as a difference is. Under the sanitizer build a memory error or undefined behaviour in the C
code aborts the process instead. It needs no fuzzing engine: the unit tests replay every
input the fuzzer ever found (tests/fuzz/found/) through it.

Per record the oracle asks, in this order:

- metadata outside Kafka's int64 (offset, timestamp, partition): the engine must hand the
  record over (return None), never raise;
- a prior state that packed.unpack rejects (the fuzzer corrupts held states): the engine
  must hand over;
- anything else: `Core.process` with the C path and without must give the same result,
  byte for byte, and the same held and changelog states; at `history` above 1 (no C path)
  the Python path must give the messages the C path gives at `history` 1.

Then the whole sequence once more through the batch path (`Task.take`, chunked and committed
where the input says), when it holds no record Kafka could not send and no corrupted state:
the same messages in the same order, the same stores, the same counts.

The stored inputs (the seed corpus, tests/fuzz/found/) mean what this module reads them as:
add new cases and choices after the existing ones, and check that the found inputs still
fail on the code they were found on, or they stop testing anything.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.core import Core
from processor.messages import OutMessage, Result
from processor.records import InputRecord
from processor.state.store import StateForm
from processor.task import Task, new_task
from processor.timefmt import MAX_MS, format_ms
from tests.fake_kafka import FakeMessage

TOPIC = "inventory.changes"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
INT64_MAX = 2**63 - 1
CLOCK0 = 1_700_000_000_000


class DisagreementError(AssertionError):
    """The C path answered what the Python path would not."""


# -- the settings matrix ----------------------------------------------------------------------

CASES: list[dict[str, Any]] = [
    {"private_fields": ["note"]},
    {"private_fields": ["id"], "payload": "delta"},
    {"private_fields": ["id"]},
    {"private_fields": ["href", "@type", "id"], "payload": "delta"},
    {"private_fields": ["relatedParty.name", "x.y", "value"], "payload": "delta"},
    {"private_fields": ["relatedParty", "note.a.b"], "tmf_version": "v5"},
    {"private_fields": ["@type.a", "href.x", "relatedParty.name"], "payload": "delta"},
    {"private_fields": ["@type.a", "x.y"], "tmf_version": "v5", "payload": "delta"},
    {"private_fields": ["id", "x"], "tmf_version": "v5", "payload": "delta"},
    {"private_fields": [], "entity_types": ["service"]},
    {"private_fields": ["note"], "entity_types": ["resource"], "payload": "delta"},
    {
        "private_fields": ["note"],
        "state_fields": {"service": ["name", "state", ""], "resource": ["x", "resourceStatus"]},
        "payload": "delta",
    },
    {
        "private_fields": ["note"],
        "tmf_version": "v5",
        "state_fields": {"service": ["operatingStatus", "state"], "resource": []},
    },
    {"private_fields": ["note"], "max_json_depth": 3},
    {"private_fields": ["note"], "max_json_depth": 300, "payload": "delta"},
    {"private_fields": ["note"], "max_record_bytes": 120},
    {"private_fields": ["note"], "kafka": {"message.max.bytes": 66_000}},
    {
        "private_fields": ["note"],
        "source": 'urn:x:"q"\\é',
        "type_prefix": "org.example",
        "reporting_system": {"id": "rs-1", "name": 'Inventory "é"'},
        "envelope": {"domain": "Inventory", "title": 'quote " and \\ slash'},
    },
    {"private_fields": ["note"], "history": 3},
    {"private_fields": ["id", "relatedParty.role"], "history": 2, "payload": "delta"},
]


@dataclass
class Case:
    """The cores of one settings case and the states they hold, reset for every input."""

    fast: Core  # history 1, with the C path
    slow: Core  # the reference: the Python path, at the case's history
    same_states: bool  # both hold states in the same form: compare them too
    batch: Task  # the batch path, at history 1
    fast_held: dict[tuple[int, str], bytes] = field(default_factory=dict)
    slow_held: dict[tuple[int, str], bytes] = field(default_factory=dict)
    fast_out: list[OutMessage] = field(default_factory=list)  # every message, in order
    outcomes: list[str] = field(default_factory=list)


@cache
def case(index: int) -> Case:
    options = CASES[index]
    settings = Settings(instance_id="fuzz", **options)
    fast_settings = Settings(instance_id="fuzz", **{**options, "history": 1})
    fast = Core(fast_settings, StateForm(keep_events=False))
    if fast.engine is None:
        raise RuntimeError("the C path is not built: nothing to fuzz")
    slow = Core(settings, StateForm(keep_events=settings.history > 1), native=False)
    return Case(fast, slow, settings.history == 1, new_task(fast_settings))


# -- reading the fuzz input -------------------------------------------------------------------


class Source:
    """Fuzz bytes read as choices; zeros once they run out, so every input is a program."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def below(self, n: int) -> int:
        return self.byte() % n if n <= 256 else (self.byte() << 8 | self.byte()) % n

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return options[self.below(len(options))]

    def chunk(self, limit: int) -> bytes:
        n = min(self.below(limit + 1), self.left)
        self.pos += n
        return self.data[self.pos - n : self.pos]


# -- instances: objects as member lists, so a name can appear twice --------------------------


class Obj(list[tuple[str, Any]]):
    """A JSON object as its members in order (duplicates allowed)."""

    def set(self, name: str, value: Any, append: bool = False) -> None:
        if not append:
            for i, (n, _) in enumerate(self):
                if n == name:
                    self[i] = (name, value)
                    return
        self.append((name, value))

    def remove(self, name: str) -> None:
        self[:] = [(n, v) for n, v in self if n != name]

    def copy(self) -> Obj:
        return Obj(self)


NAMES = [
    "id",
    "href",
    "@type",
    "",
    "name",
    "note",
    "state",
    "operatingStatus",
    "resourceStatus",
    "value",
    "x",
    "y",
    "relatedParty",
    "description",
    "category",
    "@baseType",
    "@schemaLocation",
    "alarmStatus",
    "operationalState",
    "unknownStatus",
    "a",
    "é",
    'q"',
    "a\\b",
    "a\x00b",
    "\x00",
    "a b",
    "😀",
]
SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**53,
    10**17,
    10**18 - 1,
    10**18,
    -(10**18) + 1,
    INT64_MAX,
    2**63,
    2**64,
    -(2**63),
    1.5,
    -0.0,
    1e300,
    "",
    "active",
    "inactive",
    "Active",
    "suspended",
    "terminated",
    "available",
    "x",
    "é",
    '"',
    "\\",
    "\n",
    "\x01",
    "\x00",
    "\x7f",
    "/",
    "😀",
    "\u2028",
    "/api/k",
    "Service",
    "Resource",
    "critical",
    "enable",
    "enabled",
    "running",
    ["critical", "minor"],
    ["x"],
]


def value(src: Source, depth: int) -> Any:
    kind = src.below(10)
    if kind < 6 or depth <= 0:
        return src.pick(SCALARS)
    if kind < 8:
        obj = Obj()
        for _ in range(src.below(4)):
            obj.set(src.pick(NAMES), value(src, depth - 1), append=src.below(16) == 0)
        return obj
    if kind < 9:
        return [value(src, depth - 1) for _ in range(src.below(4))]
    # deep nesting: around the depth limits of the reader, the settings and orjson
    inner: Any = src.pick(SCALARS)
    for _ in range(src.pick([2, 3, 4, 62, 63, 64, 127, 128, 129, 252, 253, 254, 300])):
        inner = [inner] if src.below(2) else Obj([("a", inner)])
    return inner


def mutate(src: Source, instance: Obj) -> None:
    """Sets, adds twice or removes a member, at the top or one level down."""
    target = instance
    nested = [v for _, v in instance if isinstance(v, Obj)]
    if nested and src.below(4) == 0:
        target = src.pick(nested)
    name = src.pick(NAMES)
    how = src.below(8)
    if how == 0:
        target.remove(name)
    else:
        target.set(name, value(src, 3), append=how == 1)


def fresh(src: Source, key: str) -> Obj:
    instance = Obj([("id", key)])
    if src.below(2):
        instance.set("href", src.pick([f"/api/x/{key}", f"/api/{key}", key, "/other", 5, ""]))
    if src.below(2):
        instance.set("@type", src.pick(["Service", "Resource", "", 0, None, Obj()]))
    for _ in range(src.below(6)):
        mutate(src, instance)
    return instance


# -- JSON text: written by hand, to keep duplicates, big integers and escapes ----------------


def text(node: Any, style: int) -> str:
    """style: 0 compact, 1 spaced, 2 every non-ASCII character escaped."""
    if isinstance(node, Obj):
        sep = ", " if style == 1 else ","
        colon = " : " if style == 1 else ":"
        members = (text(n, style) + colon + text(v, style) for n, v in node)
        return "{" + sep.join(members) + "}"
    if isinstance(node, list):
        return "[" + ",".join(text(v, style) for v in node) + "]"
    if isinstance(node, float):
        return repr(node) if math.isfinite(node) else "0"
    return json.dumps(node, ensure_ascii=style == 2)


# -- one input --------------------------------------------------------------------------------

KEYS = ["k", "k2", "é", 'q"k', "b\\k", "t\tk", "\x7fk"]


@dataclass
class Stream:
    src: Source
    offset: int = 0
    clock: int = CLOCK0
    instances: dict[str, Obj] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def envelope(stream: Stream, key: str, operation: str | None, instance: Any) -> Obj:
    src = stream.src
    env = Obj()
    entity_type = stream.types.setdefault(key, src.pick(["service", "resource"]))
    env.set("entityType", src.pick([entity_type] * 12 + ["service", "resource", "other", 1]))
    if operation is not None:
        env.set("operation", operation)
    if src.below(4) == 0:
        env.set("id", src.pick([key, key, "zz", None, 5]))
    observed = src.below(12)
    if observed < 6:
        env.set("observedAt", format_ms(stream.clock))
    elif observed == 6:
        env.set("observedAt", src.pick(["2026-01-01T00:00:00Z", "1960-01-01T00:00:00.000Z", "x"]))
    elif observed == 7:
        env.set("observedAt", None)
    if src.below(4) == 0:
        env.set("correlationId", src.pick(["ORD-1", None, 3, 'q"x', "é\n"]))
    if instance is not None or src.below(2):
        env.set("instance", instance)
    if src.below(32) == 0:
        env.set(src.pick(["entityType", "instance", "id", "extra"]), 1, append=True)
    return env


def record_value(stream: Stream, key: str) -> tuple[bytes | None, bool]:
    """The next record's value for `key`, and whether it corrupts the held state instead."""
    src = stream.src
    op = src.below(12)
    instance = stream.instances.get(key)
    if op <= 3 or instance is None:  # an update, or the first upsert
        if instance is None or op == 3:
            instance = fresh(src, key)
        else:
            instance = instance.copy()
            for _ in range(1 + src.below(3)):
                mutate(src, instance)
        if src.below(8) == 0:
            instance.set("id", src.pick([key, "other", 7]), append=src.below(2) == 0)
        stream.instances[key] = instance
        return text(envelope(stream, key, None, instance), src.below(3)).encode(), False
    if op in (4, 5):
        operation = src.pick(["delete", "delete", "upsert"])
        return text(envelope(stream, key, operation, None), 0).encode(), False
    if op == 6:
        return None, False  # a tombstone
    if op in (7, 8):  # an upsert's bytes, edited
        raw = bytearray(text(envelope(stream, key, None, instance), src.below(3)).encode())
        for _ in range(1 + src.below(3)):
            at = src.below(len(raw) + 1)
            edit = src.below(3)
            piece = src.chunk(4)
            if edit == 0:
                raw[at:at] = piece
            elif edit == 1:
                raw[at : at + len(piece)] = piece
            else:
                del raw[at : at + 1 + src.below(4)]
        return bytes(raw), False
    if op == 9:
        return src.chunk(200), False
    return None, True


def metadata(stream: Stream) -> tuple[int, int | None, int]:
    src = stream.src
    step = src.below(16)
    stream.clock += src.pick([0, 1, 999, 1000, 60_000])
    if step == 0:
        stream.offset = max(stream.offset - src.below(3), 0)  # replayed
    elif step == 1:
        stream.offset = src.pick([INT64_MAX - 1, INT64_MAX, INT64_MAX + 1, 2**64, -1, -(2**63) - 1])
    else:
        stream.offset += 1
    timestamp: int | None = stream.clock
    when = src.below(24)
    if when == 0:
        timestamp = None
    elif when == 1:
        timestamp = src.pick([-1, 0, MAX_MS, MAX_MS + 1, INT64_MAX, 2**63, -(2**63) - 1])
    elif when == 2:
        timestamp = stream.clock - 5000  # stale
    partition = src.pick([0] * 14 + [1, 2**31 - 1, 2**63])
    return stream.offset, timestamp, partition


def in_int64(*numbers: int | None) -> bool:
    return all(n is None or -(2**63) <= n <= INT64_MAX for n in numbers)


def check(data: bytes, log: Callable[[str], None] | None = None) -> None:
    """One fuzz input: raises DisagreementError, or whatever either path raised, on a finding.
    `log` is told the settings and each record as they are read."""
    src = Source(data)
    index = src.below(len(CASES))
    c = case(index)
    if log is not None:
        log(f"settings: {CASES[index]}")
    c.fast_held.clear()
    c.slow_held.clear()
    c.fast_out.clear()
    c.outcomes.clear()
    records: list[InputRecord] = []
    plain = True  # every record one Kafka could send, no state corrupted
    stream = Stream(src)
    for _ in range(1 + src.below(12)):
        key = src.pick(KEYS[:2] * 6 + KEYS)
        value_, corrupt = record_value(stream, key)
        offset, timestamp, partition = metadata(stream)
        raw_key = src.pick([key.encode()] * 14 + [b"", b"\xff"])
        headers = src.pick([[], [], [("traceparent", TRACEPARENT)], [("traceparent", b"x")]])
        record = InputRecord(TOPIC, partition, offset, timestamp, raw_key, value_, headers)
        if corrupt:
            corrupt_state(c, src, partition, key)
            plain = False
            if log is not None:
                log(f"corrupted the state of {key!r}: {c.fast_held.get((partition, key))!r}")
            continue
        if log is not None:
            log(repr(record))
        plain = plain and in_int64(offset, timestamp, partition) and 0 <= partition < 4096
        records.append(record)
        step(c, record)
    if plain and records:
        check_batch(c, src, records)


def check_batch(c: Case, src: Source, records: list[InputRecord]) -> None:
    """The records through Task.take, in chunks the input chooses, committed where it says:
    the messages, stores and counts of the record-by-record run."""
    task = c.batch
    task.abort()
    task.store.partitions.clear()
    messages = [FakeMessage.of(r) for r in records]
    live = {r.partition for r in records}
    out: list[OutMessage] = []
    counted: dict[str, int] = {}
    at = 0
    while at < len(messages):
        end = at + 1 + src.below(len(messages) - at)
        task.take(messages[at:end], live, out, lambda err: None)
        at = end
        if at == len(messages) or src.below(2):
            tallies, _ = task.commit()
            for name, n in [*tallies.skipped.items(), *tallies.dead.items()]:
                counted[name] = counted.get(name, 0) + n
            counted["emit"] = counted.get("emit", 0) + len(tallies.times_ms)
            counted["records"] = counted.get("records", 0) + tallies.records
    if out != c.fast_out:
        raise DisagreementError(f"the batch path produced other messages: {records}")
    held = {(p, k): v for p, part in task.store.partitions.items() for k, v in part.items()}
    if held != c.fast_held:
        raise DisagreementError(f"the batch path left other states: {records}")
    expected: dict[str, int] = {"records": len(records)}
    for outcome in c.outcomes:
        expected[outcome] = expected.get(outcome, 0) + 1
    if {k: v for k, v in counted.items() if v} != expected:
        raise DisagreementError(f"the batch path counted {counted}, records gave {expected}")


def corrupt_state(c: Case, src: Source, partition: int, key: str) -> None:
    held = c.fast_held.get((partition, key))
    if not held or not c.same_states:
        return
    raw = bytearray(held)
    for _ in range(1 + src.below(3)):
        raw[src.below(len(raw))] = src.byte()
    if src.below(4) == 0:
        del raw[1 + src.below(len(raw)) :]  # truncated, never to nothing
    c.fast_held[(partition, key)] = c.slow_held[(partition, key)] = bytes(raw)


def _text_key(raw: bytes | None) -> str | None:
    """The key as Task.process passes it to the core: None when empty or not UTF-8."""
    try:
        return raw.decode() if raw else None
    except UnicodeDecodeError:
        return None


def step(c: Case, record: InputRecord) -> None:
    key = _text_key(record.key)
    fast_prior = c.fast_held.get((record.partition, key)) if key is not None else None
    slow_prior = c.slow_held.get((record.partition, key)) if key is not None else None
    if not in_int64(record.offset, record.timestamp_ms, record.partition):
        # Kafka never sends these (replay refuses them): the engine must hand them over.
        if key is not None and c.fast.native_answer(record, key, fast_prior) is not None:
            raise DisagreementError(f"metadata outside int64 was not handed over: {record}")
        return
    if fast_prior is not None and key is not None:
        try:
            c.fast.form.load(key, fast_prior)
        except ValueError:
            # A held state packed.unpack rejects: the engine must hand it over.
            if c.fast.native_answer(record, key, fast_prior) is not None:
                message = f"a corrupt state was not handed over: {fast_prior!r}"
                raise DisagreementError(message) from None
            del c.fast_held[(record.partition, key)]
            c.slow_held.pop((record.partition, key), None)
            return
    fast = c.fast.process(record, key, fast_prior)
    slow = c.slow.process(record, key, slow_prior)
    c.fast_out += fast.messages
    c.outcomes.append(fast.outcome if fast.outcome != "dead_letter" else str(fast.reason))
    if view(fast) != view(slow):
        raise DisagreementError(f"{record}\nC:      {view(fast)}\nPython: {view(slow)}")
    if c.same_states and (fast.stored, fast.encoded) != (slow.stored, slow.encoded):
        raise DisagreementError(f"{record}\nstates differ: {fast.stored!r} {slow.stored!r}")
    if fast.stored is not None and fast.key is not None:
        c.fast_held[(record.partition, fast.key)] = fast.stored
    if slow.stored is not None and slow.key is not None:
        c.slow_held[(record.partition, slow.key)] = slow.stored


def view(r: Result) -> tuple[Any, ...]:
    messages = [(m.topic, m.partition, m.key, m.value, m.headers) for m in r.messages]
    return (r.outcome, r.key, r.entity_type, tuple(r.event_types), r.reason, r.time_ms, messages)


def main(paths: list[str]) -> int:
    """Replays fuzz inputs and says what each one is: `python -m tests.fuzz.harness FILE...`."""
    for path in paths:
        print(f"== {path}")
        check(Path(path).read_bytes(), log=print)
        print("answered alike")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
