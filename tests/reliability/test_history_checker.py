"""The history checker itself (`tests/history.py`), without a broker: a perfect output passes,
and each kind of damage is counted as what it is."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import orjson
import pytest

from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.records import InputRecord
from tests.history import (
    ERROR,
    ExpectedMessage,
    HistoryReport,
    check_history,
    expected_from_input,
    replay_line,
)

PARTITIONS = 3


@dataclass(frozen=True)
class Out:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def _settings() -> Settings:
    return Settings(
        bootstrap_servers="unused:9092",
        app_id="hist",
        input_topic="hist.changes",
        service_topic="hist.service.events",
        resource_topic="hist.resource.events",
        instance_id="hist-0",
        max_record_bytes=4096,
    )


def _inputs() -> list[InputRecord]:
    gen = Generator(seed=5, keys=20, mix=Mix(), start_ms=1_767_225_600_000, step_ms=1)
    offsets = [0] * PARTITIONS
    records: list[InputRecord] = []
    for r in gen.records(300):
        p = sum(r.key) % PARTITIONS
        records.append(InputRecord("hist.changes", p, offsets[p], r.timestamp_ms, r.key, r.value))
        offsets[p] += 1
    bad = [
        (b"k-json", b"{not json", []),  # replay cannot express it (has a key)
        (b"\xff\xfe", b'{"entityType": "service"}', []),  # key not UTF-8
        (None, orjson.dumps({"entityType": "service", "instance": {"id": "x"}}), []),
        (b"k-hdr", b'{"entityType": "product"}', [("x-bin", b"\xff\x00"), ("x-null", None)]),
    ]
    for key, value, headers in bad:
        records.append(InputRecord("hist.changes", 1, offsets[1], 1, key, value, headers))
        offsets[1] += 1
    return records


def _perfect(expected: list[ExpectedMessage]) -> list[Out]:
    """The output a correct processor writes: events spread by key, dead letters by input."""
    out: list[Out] = []
    next_offset: dict[tuple[str, int], int] = {}
    for m in expected:
        partition = m.partition if m.partition is not None else sum(m.key or b"") % PARTITIONS
        headers = list(m.headers)
        if not m.exact:  # a dead letter whose reason replay cannot tell: any valid one
            headers = [
                (k, b"invalid_json" if k == ERROR else b"msg" if v is None else v)
                for k, v in headers
            ]
        slot = (m.topic, partition)
        offset = next_offset.get(slot, 0)
        next_offset[slot] = offset + 1
        out.append(Out(m.topic, partition, offset, m.key, m.value, headers))
    return out


@pytest.fixture(scope="module")
def run() -> tuple[list[ExpectedMessage], list[Out], int]:
    inputs = _inputs()
    expectation = expected_from_input(inputs, _settings())
    # Replay cannot express invalid JSON with a key, nor a key that is not UTF-8; binary
    # header values it can (as U+FFFD), the dead letter keeps their bytes.
    assert len(expectation.opaque) == 2
    expected = list(expectation.messages)
    return expected, _perfect(expected), len(inputs)


def _check(expected: list[ExpectedMessage], output: list[Out]) -> HistoryReport:
    return check_history(expected, output, title="test")


def test_perfect_output_is_exact(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    report = _check(expected, output)
    report.assert_exact(allow_copies=False)
    assert report.expected_events > 100 and report.expected_dead_letters == 4
    assert report.dead_letters_read == 4
    assert "lost records" in report.table()


def test_lost_event(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    report = _check(expected, output[:10] + output[11:])
    assert (report.lost_records, report.lost_messages) == (1, 1)
    with pytest.raises(AssertionError, match="1 lost"):
        report.assert_exact(allow_copies=True)


def test_lost_dead_letter(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    report = _check(expected, [o for o in output if not o.topic.endswith("dlq")])
    assert report.lost_records == 4


def test_copies_are_allowed_only_when_asked(
    run: tuple[list[ExpectedMessage], list[Out], int],
) -> None:
    expected, output, _ = run
    copy = replace(output[5], offset=10_000)
    report = _check(expected, [*output, copy])
    assert (report.copies, report.copied_messages) == (1, 1)
    report.assert_exact(allow_copies=True)
    with pytest.raises(AssertionError, match="1 copies"):
        report.assert_exact(allow_copies=False)


def test_divergent_and_mismatched(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    event = next(o for o in output if o.topic.endswith("events"))
    other = replace(event, offset=10_000, value=(event.value or b"") + b" ")
    report = _check(expected, [*output, other])
    assert report.divergent == 1 and report.mismatched == 1
    with pytest.raises(AssertionError, match="divergent"):
        report.assert_exact(allow_copies=True)


def test_dead_letter_headers_are_compared_byte_for_byte(
    run: tuple[list[ExpectedMessage], list[Out], int],
) -> None:
    expected, output, _ = run
    changed = [
        replace(o, headers=[(k, b"\xff\x01" if v == b"\xff\x00" else v) for k, v in o.headers])
        for o in output
    ]
    report = _check(expected, changed)
    assert report.mismatched == 1


def test_out_of_order(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    by_subject: dict[bytes | None, list[int]] = {}
    for i, o in enumerate(output):
        if o.topic.endswith("events"):
            by_subject.setdefault(o.key, []).append(i)
    first, second = next(ix for ix in by_subject.values() if len(ix) >= 2)[:2]
    swapped = list(output)
    a, b = swapped[first], swapped[second]
    swapped[first], swapped[second] = replace(b, offset=a.offset), replace(a, offset=b.offset)
    report = _check(expected, swapped)
    assert report.out_of_order >= 1
    assert report.lost_records == report.divergent == report.copies == 0


def test_unexpected(run: tuple[list[ExpectedMessage], list[Out], int]) -> None:
    expected, output, _ = run
    stranger = Out("hist.service.events", 0, 99_999, b"k", b"{}", [("ce_id", b"nope")])
    noise = Out("hist.service.events", 0, 99_998, b"k", b"{}", [])
    report = _check(expected, [*output, stranger, noise])
    assert report.unexpected == 2


def test_replay_line_keeps_traceparent_semantics() -> None:
    settings = _settings()
    value = orjson.dumps({"entityType": "service", "instance": {"id": "a"}})
    record = InputRecord(
        "hist.changes",
        2,
        7,
        5,
        b"a",
        value,
        [("traceparent", b"\xff"), ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")],
    )
    line = replay_line(record, 0, settings)
    assert line is not None
    # The first traceparent (the one the processor reads) stays first, and stays invalid.
    assert orjson.loads(line)["headers"] == {"traceparent": "\ufffd"}
