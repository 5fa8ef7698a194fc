"""History checker: what `tmf-events run` wrote against what `replay` says it must write.

The input is read back from the broker (offsets, partitions, timestamps, keys, values and headers
exactly as stored) and replayed through `processor.replay.replay`, the code path `run` shares
(docs/design.md#interfaces). `check_history` then compares the read_committed output with that
expectation and counts:

- lost: input records some of whose events or dead letter never appeared;
- divergent: two different events for one (`ce_subject`, `ce_entityversion`, `ce_type`);
- copies: an event (`ce_id`) or a dead letter (source partition and offset) more than once;
- out of order: a subject's events, in topic order (first copies only), not in the order
  replay gives them (versions increasing, the events of one record in their own order);
- mismatched: an event or dead letter that differs from what replay computed for it;
- unexpected: an event or dead letter replay does not know at all.

Usage::

    inputs = read_input(bootstrap, settings.input_topic)
    want = expected_from_input(inputs, settings)
    got = consume_all(bootstrap, [service_topic, resource_topic, dlq_topic], timeout=120)
    report = check_history(want, got)
    print(report.table())
    report.assert_exact(allow_copies=False)

Records `replay` cannot express (a key that is not UTF-8, a value that is not a JSON object
while the record has a key, headers or another partition than 0, ...) can only be bad input:
every such record is dead-lettered by any correct processor. They are expected on the
dead-letter topic with their original key, value and headers; their reason is left open
(`ExpectedMessage.exact` is False) for the caller to check.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from rich.console import Console
from rich.table import Table

from processor.config import Settings
from processor.dlq import ERROR, ERROR_MESSAGE, SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC
from processor.records import REASONS, InputRecord
from processor.replay import replay

__all__ = [
    "ERROR",
    "ERROR_HEADERS",
    "Expectation",
    "ExpectedMessage",
    "HistoryReport",
    "OutputRecord",
    "check_history",
    "expected_from_input",
    "replay_line",
]

Header = tuple[str, bytes | None]
Source = tuple[int, int]  # input (partition, offset)
Kind = Literal["event", "dead_letter"]

#: The headers the processor appends to a dead letter, in order (docs/runtime.md#exactly-once).
ERROR_HEADERS = (ERROR, ERROR_MESSAGE, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)
_REPLAY_MEMBERS = frozenset(("key", "partition", "offset", "timestamp", "headers"))
_EXAMPLES = 5


class OutputRecord(Protocol):
    """A record read back from an output topic (e.g. `tests.kafka_helpers.Record`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[Header]: ...


@dataclass(frozen=True, slots=True)
class ExpectedMessage:
    """One message `run` must produce, with the input record it comes from."""

    kind: Kind
    source: Source
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    #: dead letters: the input's partition; events: None (the murmur2 partitioner decides)
    partition: int | None
    #: False for dead letters of records replay cannot express: reason and message unknown
    exact: bool = True

    @property
    def ident(self) -> str:
        """`ce_id` for events; `dlq:<partition>:<offset>` of the source for dead letters."""
        if self.kind == "event":
            return _header_text(self.headers, "ce_id")
        return f"dlq:{self.source[0]}:{self.source[1]}"

    @property
    def reason(self) -> str | None:
        """The dead-letter reason replay gives (None for events and inexact dead letters)."""
        if not self.exact:
            return None
        return _header_text(self.headers, ERROR) or None


@dataclass(frozen=True, slots=True)
class Expectation:
    """What replay says `run` must produce for an input, message by message."""

    messages: tuple[ExpectedMessage, ...]
    inputs: int  # input records replayed (every record given)
    opaque: tuple[InputRecord, ...] = ()  # records replay cannot express (dead letters)

    def __iter__(self) -> Iterator[ExpectedMessage]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def events(self) -> list[ExpectedMessage]:
        return [m for m in self.messages if m.kind == "event"]

    @property
    def dead_letters(self) -> list[ExpectedMessage]:
        return [m for m in self.messages if m.kind == "dead_letter"]


# -- the expectation ------------------------------------------------------------------------


def replay_line(record: InputRecord, number: int, settings: Settings) -> bytes | None:
    """The `tmf-events replay` line (docs/design.md#interfaces) standing for `record`, or None when
    replay cannot express it (then the record is certain to be dead-lettered: see the module doc).

    `number` is the line's index in the replay input (replay's default offset).
    Header values are text in replay: one that is not UTF-8 is decoded with U+FFFD. The
    processor copies only `traceparent` (the first one, if it is a valid W3C value) onto
    events, and a value that was not UTF-8 is never valid, so events stay exact; dead letters
    are built from the original bytes anyway.
    """
    value = record.value
    if value is not None:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            # Not a JSON object: raw line bytes. Faithful only where replay's defaults for a
            # raw line (no key, no headers, partition 0, offset = line number) are the truth.
            faithful = (
                record.key is None
                and not record.headers
                and record.partition == 0
                and record.offset == number
                and b"\n" not in value
                and b"\r" not in value
                and value.strip() != b""
            )
            return value if faithful else None
        if _REPLAY_MEMBERS & set(obj) or set(obj) == {"value"}:
            # Members replay would take as Kafka-record fields: an envelope with unknown
            # members, rejected by the processor (schema_violation).
            return None
        # Replay sees orjson's rendering of the object; only the size check can tell them apart.
        limit = settings.max_record_bytes
        if (len(orjson.dumps(obj)) > limit) != (len(value) > limit):
            return None
    else:
        obj = {"value": None}
    if record.key is None:
        key: str | None = None
    else:
        try:
            key = record.key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    headers: dict[str, str | None] = {}
    for name, raw in record.headers:
        if name not in headers:  # the processor reads the first traceparent
            headers[name] = None if raw is None else raw.decode("utf-8", "replace")
    meta: dict[str, Any] = {"key": key, "partition": record.partition, "offset": record.offset}
    if record.timestamp_ms is not None and record.timestamp_ms >= 0:
        meta["timestamp"] = record.timestamp_ms
    if headers:
        meta["headers"] = headers
    return orjson.dumps({**obj, **meta})


def expected_from_input(records: Sequence[InputRecord], settings: Settings) -> Expectation:
    """Replay `records` (as read back from the input topic) and tag every expected message
    with the input record it comes from. Records of each partition keep their offset order."""
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    lines: list[bytes] = []
    line_records: list[InputRecord] = []
    opaque: list[InputRecord] = []
    for record in ordered:
        line = replay_line(record, len(lines), settings)
        if line is None:
            opaque.append(record)
        else:
            lines.append(line)
            line_records.append(record)

    current: list[InputRecord] = []

    def feed() -> Iterator[bytes]:
        # replay() pulls one line, then yields that line's messages: the last line pulled is
        # the source of every message yielded before the next pull.
        for record, line in zip(line_records, lines, strict=True):
            current[:] = [record]
            yield line

    messages: list[ExpectedMessage] = []
    for out in replay(feed(), settings):
        record = current[0]
        source = (record.partition, record.offset)
        headers: dict[str, str | None] = out["headers"]
        if out["topic"] == settings.dlq_topic:
            # The original bytes plus the error headers replay computed.
            extra = tuple(
                (name, None if headers[name] is None else str(headers[name]).encode())
                for name in ERROR_HEADERS
            )
            messages.append(
                ExpectedMessage(
                    "dead_letter",
                    source,
                    out["topic"],
                    record.key,
                    record.value,
                    (*record.headers, *extra),
                    record.partition,
                )
            )
        else:
            messages.append(
                ExpectedMessage(
                    "event",
                    source,
                    out["topic"],
                    None if out["key"] is None else str(out["key"]).encode(),
                    None if out["value"] is None else orjson.dumps(out["value"]),
                    tuple((k, None if v is None else v.encode()) for k, v in headers.items()),
                    None,
                )
            )
    for record in opaque:
        source_headers = (
            (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()),
            (SOURCE_OFFSET, str(record.offset).encode()),
        )
        messages.append(
            ExpectedMessage(
                "dead_letter",
                (record.partition, record.offset),
                settings.dlq_topic,
                record.key,
                record.value,
                (*record.headers, (ERROR, None), (ERROR_MESSAGE, None), *source_headers),
                record.partition,
                exact=False,
            )
        )
    return Expectation(tuple(messages), len(records), tuple(opaque))


# -- the check -----------------------------------------------------------------------------


@dataclass
class HistoryReport:
    """The figures of one run; `table()` renders them, `assert_exact()` judges them."""

    title: str
    inputs: int
    expected_events: int
    expected_dead_letters: int
    events_read: int
    dead_letters_read: int
    lost_records: int
    lost_messages: int
    divergent: int
    copies: int
    copied_messages: int
    out_of_order: int
    mismatched: int
    unexpected: int
    #: dead letters by the reason header they carry (as read, first copies)
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def problems(self, allow_copies: bool) -> dict[str, int]:
        found = {
            "lost": self.lost_records,
            "divergent": self.divergent,
            "out of order": self.out_of_order,
            "mismatched": self.mismatched,
            "unexpected": self.unexpected,
        }
        if not allow_copies:
            found["copies"] = self.copies
        return {name: n for name, n in found.items() if n}

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("input records", f"{self.inputs:,}"),
            ("expected events", f"{self.expected_events:,}"),
            ("expected dead letters", f"{self.expected_dead_letters:,}"),
            ("events read (read_committed)", f"{self.events_read:,}"),
            ("dead letters read", f"{self.dead_letters_read:,}"),
            ("lost records", f"{self.lost_records:,} ({self.lost_messages:,} messages)"),
            ("divergent", f"{self.divergent:,}"),
            ("copies", f"{self.copies:,} ({self.copied_messages:,} messages copied)"),
            ("out of order", f"{self.out_of_order:,}"),
            ("mismatched", f"{self.mismatched:,}"),
            ("unexpected", f"{self.unexpected:,}"),
        ]

    def table(self, width: int = 100) -> str:
        """The figures as a text table (rich), with examples of anything that went wrong."""
        table = Table(title=self.title, show_header=True, header_style="bold")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name, value in self.rows():
            table.add_row(name, value)
        if self.reasons:
            table.add_section()
            for reason, n in sorted(self.reasons.items()):
                table.add_row(f"dead letters: {reason}", f"{n:,}")
        for note in self.notes:
            table.add_section()
            table.add_row(note, "")
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, no_color=True, color_system=None)
        console.print(table)
        for name, items in self.examples.items():
            if items:
                console.print(f"{name}, e.g.:")
                for item in items:
                    console.print(f"  {item}", overflow="fold")
        return buffer.getvalue()

    def __str__(self) -> str:
        return self.table()

    def assert_exact(self, allow_copies: bool) -> None:
        """No loss, no divergence, nothing out of order, mismatched or unexpected; no copies
        unless `allow_copies` (brokers whose read_committed shows aborted records)."""
        problems = self.problems(allow_copies)
        if problems:
            listed = ", ".join(f"{n} {name}" for name, n in problems.items())
            raise AssertionError(f"history check failed: {listed}\n{self.table()}")


def _header_text(headers: Iterable[Header], name: str) -> str:
    for key, value in headers:
        if key == name:
            return "" if value is None else value.decode("utf-8", "replace")
    return ""


def _version(headers: Iterable[Header]) -> int:
    try:
        return int(_header_text(headers, "ce_entityversion"))
    except ValueError:
        return -1


def _identity(record: OutputRecord) -> tuple[Kind, str] | None:
    names = {k for k, _ in record.headers}
    if "ce_id" in names:
        return "event", _header_text(record.headers, "ce_id")
    if ERROR in names and SOURCE_OFFSET in names:
        partition = _header_text(record.headers, SOURCE_PARTITION)
        offset = _header_text(record.headers, SOURCE_OFFSET)
        return "dead_letter", f"dlq:{partition}:{offset}"
    return None


def _matches(want: ExpectedMessage, got: OutputRecord) -> bool:
    if want.topic != got.topic or want.key != got.key or want.value != got.value:
        return False
    if want.partition is not None and want.partition != got.partition:
        return False
    if want.exact:
        return tuple(got.headers) == want.headers
    # Reason and message unknown: original headers and source headers exact, reason valid.
    have = tuple(got.headers)
    if len(have) != len(want.headers):
        return False
    for (name, value), (want_name, want_value) in zip(have, want.headers, strict=True):
        if name != want_name:
            return False
        if name == ERROR:
            if value is None or value.decode("utf-8", "replace") not in REASONS:
                return False
        elif name != ERROR_MESSAGE and value != want_value:
            return False
    return True


def _describe(record: OutputRecord) -> str:
    value = record.value or b""
    head = value[:120].decode("utf-8", "replace")
    return (
        f"{record.topic}[{record.partition}]@{record.offset} key={record.key!r}"
        f" headers={[(k, v) for k, v in record.headers][:4]}... value={head!r}"
    )


def check_history(
    expected_messages: Expectation | Iterable[ExpectedMessage],
    output_records: Iterable[OutputRecord],
    *,
    title: str = "history",
    inputs: int | None = None,
    validate: Callable[[OutputRecord], Any] | None = None,
) -> HistoryReport:
    """Compare the read_committed output of events and dead-letter topics with `expected`.

    `output_records` may come from several topics in any order: they are sorted by topic,
    partition and offset. Records that are neither events (`ce_id`) nor dead letters
    (`tmf-events-error`) count as unexpected. `validate`, when given, is called once for the
    first copy of every event that matches its expectation (e.g. a JSON Schema check).
    """
    if isinstance(expected_messages, Expectation):
        want_list = list(expected_messages.messages)
        n_inputs = expected_messages.inputs if inputs is None else inputs
    else:
        want_list = list(expected_messages)
        n_inputs = len({m.source for m in want_list}) if inputs is None else inputs
    want: dict[str, ExpectedMessage] = {}
    rank: dict[str, int] = {}
    for index, message in enumerate(want_list):
        ident = message.ident
        if ident in want and want[ident] != message:
            raise ValueError(f"two different expected messages share the identity {ident}")
        want.setdefault(ident, message)
        rank.setdefault(ident, index)

    got = sorted(output_records, key=lambda r: (r.topic, r.partition, r.offset))
    seen: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    mismatched = unexpected = 0
    events_read = dead_read = 0
    reasons: Counter[str] = Counter()
    by_version: dict[tuple[str, str, str], set[tuple[bytes | None, tuple[Header, ...]]]] = (
        defaultdict(set)
    )
    last_rank: dict[str, tuple[int, int]] = {}
    out_of_order = 0

    def example(name: str, text: str) -> None:
        if len(examples[name]) < _EXAMPLES:
            examples[name].append(text)

    for record in got:
        identity = _identity(record)
        if identity is None:
            unexpected += 1
            example("unexpected", _describe(record))
            continue
        kind, ident = identity
        first = seen[ident] == 0
        seen[ident] += 1
        if kind == "event":
            events_read += 1
            subject = _header_text(record.headers, "ce_subject")
            version = _header_text(record.headers, "ce_entityversion")
            ce_type = _header_text(record.headers, "ce_type")
            by_version[(subject, version, ce_type)].add((record.value, tuple(record.headers)))
        else:
            dead_read += 1
            if first:
                reasons[_header_text(record.headers, ERROR)] += 1
        expected = want.get(ident)
        if expected is None:
            if first:
                unexpected += 1
                example("unexpected", _describe(record))
            continue
        if expected.kind != kind or not _matches(expected, record):
            mismatched += 1
            example("mismatched", f"{ident}: {_describe(record)}")
            continue
        if not first:
            continue
        if kind == "event":
            if validate is not None:
                validate(record)
            # Replay's order of a subject's events: versions up, a record's events in order.
            position = (_version(record.headers), rank[ident])
            previous = last_rank.get(subject)
            if previous is not None and position < previous:
                out_of_order += 1
                example("out of order", f"{subject}: {previous} then {position} ({ident})")
            last_rank[subject] = max(position, previous or position)

    divergent = 0
    for (subject, version, ce_type), variants in by_version.items():
        if len(variants) > 1:
            divergent += 1
            example("divergent", f"{subject} v{version} {ce_type}: {len(variants)} variants")

    lost_sources: set[Source] = set()
    lost_messages = 0
    for ident, message in want.items():
        if not seen[ident]:
            lost_messages += 1
            lost_sources.add(message.source)
            example("lost", f"input {message.source}: {message.kind} {ident}")
    copies = {ident: n for ident, n in seen.items() if n > 1}
    for ident, n in list(copies.items())[:_EXAMPLES]:
        example("copies", f"{ident} x{n}")
    n_events = sum(1 for m in want.values() if m.kind == "event")
    return HistoryReport(
        title=title,
        inputs=n_inputs,
        expected_events=n_events,
        expected_dead_letters=len(want) - n_events,
        events_read=events_read,
        dead_letters_read=dead_read,
        lost_records=len(lost_sources),
        lost_messages=lost_messages,
        divergent=divergent,
        copies=len(copies),
        copied_messages=sum(n - 1 for n in copies.values()),
        out_of_order=out_of_order,
        mismatched=mismatched,
        unexpected=unexpected,
        reasons=reasons,
        examples=dict(examples),
    )
