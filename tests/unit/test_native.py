"""The C fast path (processor/native) against the Python path it stands in for.

Both cores see the same records in the same order, each with its own packed store; every
result must be the same: outcome, messages byte for byte (value, key, headers, topic), the
changelog value and the packed state. The C path may hand a record to the Python path (it
then returns None), never answer differently.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, get_args

import orjson
import pytest
from confluent_kafka import KafkaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor import native
from processor.config import Settings
from processor.decide import Outcome
from processor.dev.synthetic import Generator, Mix
from processor.messages import OutMessage, Result
from processor.records import WRITABLE_DEPTH, InputRecord
from processor.state import packed
from processor.state.packed import pack
from processor.task import Tallies, Task, new_task
from processor.timefmt import MAX_MS, MIN_MS, InvalidTimestampError, format_ms, parse_ms
from processor.tmf import ENTITY_TYPES, KINDS
from tests.fake_kafka import FakeMessage
from tests.fuzz import harness

if not native.AVAILABLE:
    if os.environ.get("TMF_REQUIRE_NATIVE"):
        pytest.fail("the C fast path was not built (no C compiler at install time?)")
    pytest.skip("the C fast path is not built here", allow_module_level=True)

from processor import _native

TOPIC = "inventory.changes"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# -- primitives -------------------------------------------------------------------------------


@given(st.binary(max_size=700), st.integers(min_value=1, max_value=64))
def test_blake2b_is_hashlibs(data: bytes, size: int) -> None:
    assert _native.blake2b(data, size) == hashlib.blake2b(data, digest_size=size).digest()


def test_blake2b_at_block_boundaries() -> None:
    for n in (0, 1, 127, 128, 129, 255, 256, 257, 1024):
        data = bytes(range(256)) * 5
        assert _native.blake2b(data[:n], 16) == hashlib.blake2b(data[:n], digest_size=16).digest()


def test_blake2b_gives_the_rfc_7693_test_vector() -> None:
    """RFC 7693 Appendix A: BLAKE2b-512("abc")."""
    expected = (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
    assert _native.blake2b(b"abc", 64).hex() == expected


def test_blake2b_gives_the_rfc_7693_self_test_digests() -> None:
    """RFC 7693 Appendix E runs BLAKE2b over inputs of lengths 0, 3, 128, 129, 255 and 1024
    (its selftest_seq) for digests of 20, 32, 48 and 64 bytes; the unkeyed half of it, each
    digest against hashlib's."""
    for outlen in (20, 32, 48, 64):
        for inlen in (0, 3, 128, 129, 255, 1024):
            data = _selftest_seq(inlen, inlen)
            assert (
                _native.blake2b(data, outlen) == hashlib.blake2b(data, digest_size=outlen).digest()
            )


def _selftest_seq(length: int, seed: int) -> bytes:
    """RFC 7693 Appendix E: a deterministic byte sequence (a Fibonacci generator)."""
    a = (0xDEAD4BAD * seed) & 0xFFFFFFFF
    b = 1
    out = bytearray()
    for _ in range(length):
        t = (a + b) & 0xFFFFFFFF
        a, b = b, t
        out.append((t >> 24) & 0xFF)
    return bytes(out)


@given(st.integers(min_value=0, max_value=MAX_MS))
def test_time_formatting_and_parsing_match(ms: int) -> None:
    text = format_ms(ms)
    assert _native.format_ms(ms) == text
    assert _native.parse_ms(text) == ms


@given(
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", fullmatch=True
    )
)
def test_a_parsed_time_is_what_python_parses(text: str) -> None:
    fast = _native.parse_ms(text)
    try:
        slow: int | None = parse_ms(text)
    except InvalidTimestampError:
        slow = None
    if slow is not None and slow >= 0:
        assert fast == slow  # the C path takes every valid canonical time from 1970 on
    else:
        assert fast is None


# -- the shapes both paths share (processor/native/contract.h) ---------------------------------


def test_the_c_path_shares_the_python_paths_shapes() -> None:
    """Every shape the C code writes by position or by number, against its Python twin."""
    shapes = _native.CONTRACT
    assert shapes["result_fields"] == Result._fields
    assert shapes["out_message_fields"] == OutMessage._fields
    assert set(shapes["outcomes"]) <= set(get_args(Outcome)) - {"mismatch", "invalid"}
    assert shapes["entity_types"] == ENTITY_TYPES
    assert shapes["kinds"] == KINDS
    assert shapes["packed"] == packed.LAYOUT
    assert struct.calcsize(shapes["packed"]["head"]) == shapes["packed"]["head_size"]
    bits = {name: bit for name, bit in native.TYPE_BITS.items() if name != "integer"}
    assert shapes["type_bits"] == bits
    assert native.TYPE_BITS["integer"] == native.TYPE_BITS["number"]
    assert shapes["time"] == {"min_ms": MIN_MS, "max_ms": MAX_MS}
    assert shapes["max_depth"] <= WRITABLE_DEPTH  # the C path reads nothing Python rejects


@pytest.mark.parametrize("which", ["result", "out_message"])
def test_an_engine_refuses_named_tuples_whose_fields_drifted(
    which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C code builds them by position: a field moved on the Python side alone would
    shift every value it writes."""
    original = Result if which == "result" else OutMessage
    drifted = NamedTuple("Drifted", [(f, Any) for f in reversed(original._fields)])  # type: ignore[misc]
    monkeypatch.setattr(native, "Result" if which == "result" else "OutMessage", drifted)
    with pytest.raises(TypeError, match="fields the C path does not know"):
        new_task(Settings(instance_id="t"))


# -- both paths over the same records ---------------------------------------------------------


class Pair:
    """A task with the C path and one without, each with its own packed store."""

    def __init__(self, settings: Settings) -> None:
        self.fast_task = new_task(settings)
        self.slow_task = new_task(settings, native=False)
        self.fast = self.fast_task.core
        assert self.fast.engine is not None
        self.fast_store = self.fast_task.store
        self.slow_store = self.slow_task.store
        self.records = 0

    def feed(self, record: InputRecord) -> Result:
        a = self.fast_task.process(record)
        b = self.slow_task.process(record)
        self.records += 1
        assert _view(a) == _view(b), record
        assert (a.stored, a.encoded) == (b.stored, b.encoded), record
        self.fast_task.commit()
        self.slow_task.commit()
        assert self.fast_store.partitions == self.slow_store.partitions
        return a

    @property
    def share(self) -> float:
        return self.fast.native_records / max(self.records, 1)


def _view(r: Result) -> tuple[Any, ...]:
    messages = [(m.topic, m.partition, m.key, m.value, m.headers) for m in r.messages]
    return (r.outcome, r.key, r.entity_type, tuple(r.event_types), r.reason, r.time_ms, messages)


def _synthetic(count: int, seed: int, partitions: int = 1) -> Iterator[InputRecord]:
    gen = Generator(seed=seed, keys=60, mix=Mix(), instance_bytes=900)
    for offset, rec in enumerate(gen.records(count)):
        headers: list[tuple[str, bytes | None]] = []
        if offset % 3 == 0:
            headers = [("traceparent", TRACEPARENT)]
        elif offset % 7 == 0:
            headers = [("traceparent", b"not-a-traceparent")]
        yield InputRecord(
            TOPIC, offset % partitions, offset, rec.timestamp_ms, rec.key, rec.value, headers
        )


MATRIX = [
    {"tmf_version": "v4", "payload": "full", "private_fields": ["note"]},
    {"tmf_version": "v4", "payload": "delta", "private_fields": ["note"]},
    {
        "tmf_version": "v4",
        "payload": "delta",
        "private_fields": ["note", "relatedParty.name", "serviceCharacteristic.value", "x.y"],
        "envelope": {"domain": "Inventory", "title": 'quote " and \\ slash'},
    },
    {"tmf_version": "v4", "payload": "full", "private_fields": [], "entity_types": ["service"]},
    {"tmf_version": "v5", "payload": "full", "private_fields": ["note"]},
    {"tmf_version": "v5", "payload": "delta", "private_fields": ["description"]},
    {
        "tmf_version": "v4",
        "payload": "full",
        "private_fields": ["note"],
        "source": 'urn:x:"quoted"',
        "type_prefix": "org.example",
        "reporting_system": {"id": "rs-1", "name": "Inventory é"},
    },
    {"tmf_version": "v4", "payload": "delta", "private_fields": ["href", "@type", "id"]},
    {"tmf_version": "v4", "payload": "full", "private_fields": ["note"], "max_json_depth": 4},
    {
        "tmf_version": "v4",
        "payload": "delta",
        "private_fields": [],
        "state_fields": {"service": ["state", "name"], "resource": ["resourceStatus"]},
    },
]


@pytest.mark.parametrize("options", MATRIX, ids=lambda o: f"{o['tmf_version']}-{o['payload']}")
def test_both_paths_agree_on_a_synthetic_stream(options: dict[str, Any]) -> None:
    pair = Pair(Settings(instance_id="t", **options))
    for record in _synthetic(1500, seed=len(str(options)), partitions=2):
        pair.feed(record)
    if options["tmf_version"] == "v4" and "max_json_depth" not in options:
        # The synthetic instances are v4 data: the C path must take nearly all of them.
        assert pair.share > 0.9, pair.share
    else:
        assert pair.share > 0.3, pair.share


def _batched(
    settings: Settings, messages: list[FakeMessage], live: set[int], chunk: int
) -> tuple[list[OutMessage], list[KafkaError], Tallies, Task]:
    """The messages through Task.take in chunks of `chunk`, committed every third chunk."""
    task = new_task(settings)
    out: list[OutMessage] = []
    errors: list[KafkaError] = []
    total = Tallies()
    for n, at in enumerate(range(0, len(messages), chunk)):
        task.take(messages[at : at + chunk], live, out, errors.append)
        if n % 3 == 2:
            _add(total, task.commit()[0])
    _add(total, task.commit()[0])
    return out, errors, total, task


def _add(total: Tallies, t: Tallies) -> None:
    total.records += t.records
    total.native += t.native
    total.consumed += t.consumed
    total.emitted += t.emitted
    total.skipped += t.skipped
    total.dead += t.dead
    total.times_ms += t.times_ms


@pytest.mark.parametrize("chunk", [1, 7, 500])
@pytest.mark.parametrize("options", MATRIX[:3], ids=lambda o: f"{o['tmf_version']}-{o['payload']}")
def test_the_batch_path_is_the_record_path(options: dict[str, Any], chunk: int) -> None:
    """Task.take over the messages of consume() calls gives what Task.process gives record
    by record on the Python path: messages in order, stores, counts; consumer errors go to
    the callback, partitions not live are passed over."""
    settings = Settings(instance_id="t", **options)
    records = list(_synthetic(900, seed=chunk, partitions=3))
    odd = [
        InputRecord(TOPIC, 0, 10_000, None, b"", b"{}", []),  # missing key
        InputRecord(TOPIC, 1, 10_001, 5, b"\xff", b"{}", []),  # key not UTF-8
        InputRecord(TOPIC, 0, 10_002, 5, b"k", b"not json", []),  # invalid JSON
        InputRecord(TOPIC, 1, 10_003, 5, b"k", b'{"entityType":"service","x":1.5}', []),
    ]
    records[100:100] = odd
    failure = KafkaError(KafkaError._TRANSPORT, "down")
    messages = [FakeMessage.of(r) for r in records]
    messages[50:50] = [FakeMessage.failed(failure)]
    live = {0, 1}  # partition 2's messages arrived after a revoke: passed over
    out, errors, tallies, task = _batched(settings, messages, live, chunk)

    slow = new_task(settings, native=False)
    want: list[OutMessage] = []
    for r in records:
        if r.partition in live:
            want += slow.process(r).messages
    expected, _ = slow.commit()
    assert out == want
    assert errors == [failure]
    assert task.store.partitions == slow.store.partitions
    assert tallies.records == expected.records == len([r for r in records if r.partition in live])
    assert tallies.consumed == expected.consumed
    assert tallies.emitted == expected.emitted
    assert tallies.skipped == expected.skipped
    assert tallies.dead == expected.dead
    assert sorted(tallies.times_ms) == sorted(expected.times_ms)
    assert tallies.native > 0.9 * tallies.records
    assert task.offsets == {} and task.records == 0  # committed


def test_an_aborted_batch_leaves_no_count_behind() -> None:
    settings = Settings(instance_id="t", private_fields=["note"])
    task = new_task(settings)
    messages = [FakeMessage.of(r) for r in _synthetic(50, seed=3)]
    task.take(messages, {0}, [], lambda err: None)
    assert task.records == 50 and task.offsets == {0: 50}
    task.abort()
    assert task.records == 0 and task.staged == {} and task.offsets == {}
    tallies, touched = task.commit()
    assert tallies.records == 0 and not tallies.emitted and not touched
    assert task.store.partitions == {}


def test_the_fast_path_emits_the_events_of_a_story() -> None:
    pair = Pair(Settings(instance_id="t", private_fields=["note"]))
    key = b"svc-1"

    def record(offset: int, value: dict[str, Any] | None) -> InputRecord:
        raw = None if value is None else orjson.dumps(value)
        return InputRecord(TOPIC, 0, offset, 1_700_000_000_000 + offset, key, raw, [])

    base = {"id": "svc-1", "href": "/s/svc-1", "name": "A", "state": "active", "note": "x"}
    changes: list[dict[str, Any] | None] = [
        {"entityType": "service", "instance": base},
        {"entityType": "service", "instance": {**base, "name": "B"}},
        {"entityType": "service", "instance": {**base, "name": "B", "state": "inactive"}},
        {
            "entityType": "service",
            "instance": {**base, "name": "B", "state": "inactive", "note": "y"},
        },
        {"entityType": "service", "operation": "delete"},
        None,
        {"entityType": "service", "instance": base},
    ]
    outcomes = [pair.feed(record(i, v)) for i, v in enumerate(changes)]
    assert [r.outcome for r in outcomes] == [
        "emit",
        "emit",
        "emit",
        "unchanged",
        "emit",
        "unknown_delete",
        "emit",
    ]
    assert [r.event_types for r in outcomes if r.outcome == "emit"] == [
        ("ServiceCreateEvent",),
        ("ServiceAttributeValueChangeEvent",),
        ("ServiceStateChangeEvent",),
        ("ServiceDeleteEvent",),
        ("ServiceCreateEvent",),
    ]
    assert pair.fast.native_records == len(changes)  # all of them plain enough


# -- odd records: the C path answers alike or hands them on -----------------------------------

KEYS = ["k1", "k2", 'q"k', "b\\k", "t\tk", "é"]
_names = st.sampled_from(
    ["name", "note", "value", "state", "@type", "href", "id", "x", "é", "a b", 'q"', "y"]
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, -1, 10**18, 10**17, -(10**17)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.text(alphabet=st.sampled_from(['"', "\\", "\n", "\x01", "é", "😀", "a", "/"]), max_size=4),
    st.sampled_from(["", "active", "inactive", "Active", "suspended", "available"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=3)
    ),
    max_leaves=8,
)


def _rare(draw: st.DrawFn, plain: Any, *odd: Any) -> Any:
    """Mostly the plain choice, now and then one of the odd ones."""
    return draw(st.sampled_from([plain] * (8 * len(odd)) + list(odd)))


_free_names = st.sampled_from(["x", "y", "é", "a b", 'q"', "note", "value", "note2"])
_plain_values = st.one_of(
    st.text(alphabet="abcdefé €-", max_size=8),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.none(),
)


@st.composite
def _instance(draw: st.DrawFn, key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": key}
    if draw(st.booleans()):
        body["href"] = _rare(draw, f"/api/x/{key}", "/other", 5, None, key, "")
    if draw(st.booleans()):
        body["@type"] = _rare(draw, "Service", "", 0, 1, True, [], {"a": 1}, None)
    if draw(st.booleans()):
        body["state"] = _rare(draw, "active", "inactive", "Active", None, 3)
    if draw(st.integers(0, 4)) == 0:
        body.update(draw(st.dictionaries(_names, _values, max_size=4)))
    else:  # members the event schemas say nothing about, so the record stays valid
        body.update(draw(st.dictionaries(_free_names, _plain_values, max_size=4)))
    if draw(st.booleans()):
        body["relatedParty"] = [
            {"name": draw(_plain_values), "role": "r"},
            {"id": 1, "name": "n"},
        ]
    body["id"] = _rare(draw, key, "other", 7)
    return body


# Members written as raw JSON text: bad UTF-8, numbers and literals at the edges of what
# the C reader takes, escapes. The Python path decides; the C path must agree or hand over.
# The instance is at depth 2: an array nested 62 deep inside it reaches the limit (64).
_DEEPEST = b'"x":' + b"[" * 62 + b"1" + b"]" * 62
_RAW_MEMBERS = [
    b'"x":"\xed\xa0\x80"',  # a surrogate
    b'"x":"\xc0\xaf"',  # overlong
    b'"x":"\xe0\x80\xaf"',
    b'"x":"\xf0\x80\x80\xaf"',
    b'"x":"\xf4\x90\x80\x80"',  # beyond U+10FFFF
    b'"x":"\x80"',
    b'"x":"\xe2\x82"',
    b'"x":"\xf8\x88\x80\x80\x80"',
    b'"x":"\x01"',
    b'"x":"\x7f\xf0\x9f\x98\x80\xe2\x82\xac"',  # valid: DEL, an emoji, the euro sign
    b'"x":"\\ud800"',  # a lone high surrogate
    b'"x":"\\udc00"',  # a lone low surrogate
    b'"x":"\\ud800\\u0041"',
    b'"x":"\\x"',
    b'"x":"\\u12"',
    b'"x":"\\"q"',
    b'"x":"\\u00e9\\/\\b\\u001f\\u007f\\u2028\\u0000\\\\"',
    b'"x":"\\ud83d\\ude00 \\uD83D\\uDE00"',
    b'"x":["\\n",{"y":"\\t"}]',
    b'"\\u0078":1',  # an escaped member name
    b'"state":"\\u0061ctive"',  # an enum member, escaped
    b'"description":"a\\nb"',  # a string member, escaped
    b'"href":"\\/x"',
    b'"x":-0',
    b'"x":01',
    b'"x":1E5',
    b'"x":1.5e-3',
    b'"x":-123456789012345678',
    b'"x":1234567890123456789',
    b'"x":18446744073709551616',  # beyond 64 bits: orjson reads a float
    b'"x":-123456789012345678901',
    b'"x":tru',
    b'"x":nul',
    b'"x":[1,]',
    b'"x":{"a":1,}',
    _DEEPEST,
    _DEEPEST.replace(b"[", b"[[", 1).replace(b"]", b"]]", 1),  # one level too deep
    b'"x" : { "y" : [ true , false , null ] }',
]


@st.composite
def _record(draw: st.DrawFn, offset: int) -> InputRecord:
    key = draw(st.sampled_from(KEYS))
    raw_key: bytes | None = _rare(draw, key.encode(), b"", b"\xff", None)
    envelope: dict[str, Any] = {}
    entity_type = _rare(draw, "service", "resource", "other", 1, "absent")
    if entity_type != "absent":
        envelope["entityType"] = entity_type
    operation = draw(st.sampled_from([None] * 4 + ["upsert", "delete", "delete"]))
    operation = _rare(draw, operation, "x", 0)
    if operation is not None:
        envelope["operation"] = operation
    if draw(st.booleans()):
        envelope["id"] = _rare(draw, key, "zz", None, 5)
    when = 1_700_000_000_000 + draw(st.integers(0, 40)) * 1000 + draw(st.integers(0, 999))
    observed = _rare(
        draw,
        "canonical",
        None,
        "absent",
        "2026-01-01T00:00:00Z",
        "1960-01-01T00:00:00.000Z",
        "2026-02-30T00:00:00.000Z",
        "x",
    )
    if observed == "canonical":
        envelope["observedAt"] = format_ms(when)
    elif observed != "absent":
        envelope["observedAt"] = observed
    if draw(st.booleans()):
        envelope["correlationId"] = _rare(draw, "ORD-1", None, 3, 'q"x')
    shape = _rare(draw, "instance", "absent", "null", "list")
    if shape == "instance":
        envelope["instance"] = draw(_instance(key))
    elif shape == "null":
        envelope["instance"] = None
    elif shape == "list":
        envelope["instance"] = [1]
    if _rare(draw, False, True):
        envelope["extra"] = 1
    text = orjson.dumps(envelope)
    mutation = _rare(
        draw, "none", "space", "duplicate", "escape", "tombstone", "tombstone", "raw", "raw"
    )
    value: bytes | None = text
    if mutation == "space":
        value = text.replace(b",", b" ,\n\t").replace(b":", b" : ")
    elif mutation == "duplicate" and b'"instance":{' in text:
        value = text.replace(b'"instance":{', b'"instance":{"name":"d","name":"e",', 1)
    elif mutation == "escape":
        value = text.replace(b'"id"', b'"i\\u0064"', 1)
    elif mutation == "tombstone":
        value = None
    elif mutation == "raw" and b'"instance":{' in text:
        member = draw(st.sampled_from(_RAW_MEMBERS))
        value = text.replace(b'"instance":{', b'"instance":{' + member + b",", 1)
    timestamp = _rare(draw, when, None, -1, MAX_MS + 1)
    headers: list[tuple[str, bytes | None]] = draw(
        st.sampled_from([[], [], [("traceparent", TRACEPARENT)], [("traceparent", b"bad")]])
    )
    partition = _rare(draw, 0, 1)
    return InputRecord(TOPIC, partition, offset, timestamp, raw_key, value, headers)


@st.composite
def _stream(draw: st.DrawFn) -> list[InputRecord]:
    records = []
    offset = 0
    for _ in range(draw(st.integers(1, 16))):
        offset += draw(st.sampled_from([1, 1, 1, 2, -3]))  # now and then a replayed offset
        records.append(draw(_record(max(offset, 0))))
    return records


_ODD_SETTINGS = [
    Settings(instance_id="t", private_fields=["note", "relatedParty.name"], payload="delta"),
    Settings(instance_id="t", tmf_version="v5", private_fields=["value.x", "note"]),
    Settings(instance_id="t", private_fields=["x"], payload="full"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(), st.sampled_from(range(len(_ODD_SETTINGS))))
def test_both_paths_agree_on_odd_records(stream: list[InputRecord], which: int) -> None:
    pair = Pair(_ODD_SETTINGS[which])
    for record in stream:
        pair.feed(record)


# Raw members the C path reads itself (the rest it must hand over).
_READ_BY_C = {
    _DEEPEST,
    b'"x":"\\"q"',
    b'"x":"\\u00e9\\/\\b\\u001f\\u007f\\u2028\\u0000\\\\"',
    b'"x":"\\ud83d\\ude00 \\uD83D\\uDE00"',
    b'"x":["\\n",{"y":"\\t"}]',
    b'"description":"a\\nb"',
    b'"x":"\x7f\xf0\x9f\x98\x80\xe2\x82\xac"',
    b'"x":-123456789012345678',
    b'"x" : { "y" : [ true , false , null ] }',
}


@pytest.mark.parametrize("member", _RAW_MEMBERS, ids=lambda m: m.decode("ascii", "replace"))
@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_raw_members_are_read_alike(member: bytes, existing: bool) -> None:
    pair = Pair(Settings(instance_id="t", private_fields=["note"]))
    plain = b'{"entityType":"service","instance":{"id":"k","name":"a"}}'
    if existing:
        pair.feed(InputRecord(TOPIC, 0, 1, 1_700_000_000_000, b"k", plain, []))
    value = plain.replace(b'"instance":{', b'"instance":{' + member + b",")
    before = pair.fast.native_records
    result = pair.feed(InputRecord(TOPIC, 0, 2, 1_700_000_000_001, b"k", value, []))
    assert (pair.fast.native_records > before) == (member in _READ_BY_C), result.outcome


# What a string may hold at any byte, as raw JSON text, and whether the C path reads it (the
# rest it hands over, or both paths make it a dead letter).
_STRING_BYTES = {
    "plain": (b"z", True),
    "quote-escape": (b'\\"', True),
    "backslash-escape": (b"\\\\", True),
    "unicode-escape": (b"\\u00e9", True),
    "surrogate-pair": (b"\\ud83d\\ude00", True),
    "del": (b"\x7f", True),
    "two-byte": ("é".encode(), True),
    "three-byte": ("€".encode(), True),
    "four-byte": ("😀".encode(), True),
    "raw-control": (b"\x01", False),
    "raw-newline": (b"\n", False),
    "lone-continuation": (b"\x80", False),
    "truncated-sequence": (b"\xe2\x82", False),
    "overlong": (b"\xc0\xaf", False),
    "lone-surrogate-escape": (b"\\udc00", False),
}


@pytest.mark.parametrize("kind", list(_STRING_BYTES))
@pytest.mark.parametrize("where", ["value", "name"])
def test_a_string_is_read_alike_whatever_byte_sits_where(kind: str, where: str) -> None:
    """The reader skips plain text a word (8 bytes) at a time: each kind of byte, at every
    place in and around a word, in strings short and long, also as the record's last bytes."""
    special, read_by_c = _STRING_BYTES[kind]
    if where == "name" and special.startswith(b"\\"):
        read_by_c = False  # names with escapes are the Python path's
    pair = Pair(Settings(instance_id="t", private_fields=["note"]))
    pair.feed(_upsert(0, b'{"id":"k","x":"-"}'))
    offset = 0
    for before in range(18):
        for after in (0, 1, 7, 8, 9):
            text = b"a" * before + special + b"b" * after
            member = b'"x":"' + text + b'"' if where == "value" else b'"' + text + b'":1'
            for instance in (b'{"id":"k",' + member + b"}", b'{"id":"k",' + member + b',"y":2}'):
                offset += 1
                taken = pair.fast.native_records
                pair.feed(_upsert(offset, instance))
                assert (pair.fast.native_records > taken) == read_by_c, (before, after)


@pytest.mark.parametrize("key", ['q"k', "b\\k", "c\x01k", "\x7fk", "é😀"])
@pytest.mark.parametrize("how", ["delete", "tombstone", "update"])
def test_keys_that_json_must_escape_are_handed_over(key: str, how: str) -> None:
    """Only the Python path writes such keys (payload id, subject, correlation id)."""
    pair = Pair(Settings(instance_id="t"))
    instance = {"id": key, "name": "a"}
    create = orjson.dumps({"entityType": "service", "instance": instance})
    pair.feed(InputRecord(TOPIC, 0, 1, 1_700_000_000_000, key.encode(), create, []))
    later: bytes | None = {
        "delete": b'{"entityType":"service","operation":"delete"}',
        "tombstone": None,
        "update": orjson.dumps({"entityType": "service", "instance": {**instance, "name": "b"}}),
    }[how]
    before = pair.fast.native_records
    result = pair.feed(InputRecord(TOPIC, 0, 2, 1_700_000_000_001, key.encode(), later, []))
    assert result.outcome == "emit"
    plain = key in ("\x7fk", "é😀")  # DEL and non-ASCII need no escaping
    assert (pair.fast.native_records > before) == plain


def test_a_state_the_python_path_keeps_in_a_rare_form_is_read_there() -> None:
    """A state packed inline (an upper-case event id) is not the C path's: it hands it on."""
    pair = Pair(Settings(instance_id="t"))
    first = InputRecord(
        TOPIC,
        0,
        1,
        1_700_000_000_000,
        b"k",
        orjson.dumps({"entityType": "service", "instance": {"id": "k", "name": "a"}}),
        [],
    )
    pair.feed(first)
    for store in (pair.fast_store, pair.slow_store):
        state = store.state(0, "k")
        assert state is not None and state.last_event_id is not None
        state.last_event_id = state.last_event_id.upper()
        store.put(0, "k", pack("k", state, store.form.profiles))
    before = pair.fast.native_records
    second = InputRecord(
        TOPIC,
        0,
        2,
        1_700_000_000_001,
        b"k",
        orjson.dumps({"entityType": "service", "instance": {"id": "k", "name": "b"}}),
        [],
    )
    result = pair.feed(second)
    assert result.outcome == "emit"
    assert pair.fast.native_records == before  # handed to the Python path


# -- inputs that once crashed the C path or set it apart from the Python path -----------------

_FOUND = sorted((Path(__file__).parents[1] / "fuzz" / "found").iterdir())


@pytest.mark.parametrize("found", _FOUND, ids=[p.name for p in _FOUND])
def test_every_input_the_fuzzer_found_is_answered_alike(found: Path) -> None:
    """Replays a fuzzer finding (docs/native.md#when-the-fuzzer-finds-something) through the
    fuzz oracle: it raises on any difference between the paths, or on a raise from either."""
    harness.check(found.read_bytes())


def test_the_fuzz_oracle_tells_a_difference() -> None:
    """The oracle is only worth its findings if it fails on a difference: an engine that
    answers `unchanged` to everything must be caught on the first record."""
    case = harness.case(0)
    real = case.fast.engine

    class Liar:
        def process(self, *args: Any) -> Result:
            return Result("unchanged", [], args[2], "service")

    case.fast.engine = Liar()  # type: ignore[assignment]
    try:
        with pytest.raises(harness.DisagreementError):
            harness.check(bytes(64))
    finally:
        case.fast.engine = real


def _upsert(offset: int, instance: bytes, key: bytes = b"k") -> InputRecord:
    value = b'{"entityType":"service","instance":' + instance + b"}"
    return InputRecord(TOPIC, 0, offset, 1_700_000_000_000 + offset, key, value, [])


@pytest.mark.parametrize(
    ("tmf_version", "payload", "by_c"),
    # v5 writes a full instance only with a string @type: the Create goes to the Python path
    [("v4", "full", 3), ("v4", "delta", 3), ("v5", "delta", 2)],
)
def test_an_update_leaving_only_an_empty_name_public_is_answered_alike(
    tmf_version: str, payload: str, by_c: int
) -> None:
    """`id` private, {"": 1} → {"": 2}: the C path dereferenced NULL (SIGSEGV: the replica
    died on the record), the Python path raised IndexError; now both emit one event."""
    pair = Pair(
        Settings(instance_id="t", private_fields=["id"], tmf_version=tmf_version, payload=payload)
    )
    pair.feed(_upsert(1, b'{"id":"k","":1}'))
    result = pair.feed(_upsert(2, b'{"id":"k","":2}'))
    assert result.event_types == ("ServiceAttributeValueChangeEvent",)
    removed = pair.feed(_upsert(3, b'{"id":"k"}'))
    assert removed.event_types == ("ServiceAttributeValueChangeEvent",)
    assert pair.fast.native_records == by_c


@pytest.mark.parametrize("tmf_version", ["v4", "v5"])
def test_an_empty_name_changing_under_delta_is_written_alike(tmf_version: str) -> None:
    """fieldPath and the delta payload of a member named "": the C path copied into a NULL
    buffer (undefined behaviour, reported by the sanitizer build, `make sanitize`)."""
    pair = Pair(Settings(instance_id="t", payload="delta", tmf_version=tmf_version))
    pair.feed(_upsert(1, b'{"id":"k","@type":"Service","":1,"a":1}'))
    result = pair.feed(_upsert(2, b'{"id":"k","@type":"Service","":2,"a":1}'))
    (message,) = result.messages
    body = orjson.loads(message.value or b"")
    assert body["event"]["service"][""] == 2
    if tmf_version == "v4":
        assert body["fieldPath"] == ""
    assert pair.fast.native_records == 2


_TWICE = [
    b'{"entityType":"service","instance":{"id":"k","id":1}}',
    b'{"entityType":"service","instance":{"id":"k","id":"other"}}',
    b'{"entityType":"service","instance":{"id":"other","id":"k"}}',
    b'{"entityType":"service","instance":{"id":"k","note":1,"note":2}}',
    b'{"entityType":"service","instance":{"id":"k","x":{"y":[{"a":1,"a":1}]}}}',
    b'{"entityType":"service","entityType":"resource","instance":{"id":"k"}}',
    b'{"entityType":"service","operation":"delete","operation":"delete"}',
]


@pytest.mark.parametrize("value", _TWICE, ids=range(len(_TWICE)))
@pytest.mark.parametrize("before", ["nothing", "created", "replayed", "stale", "disabled"])
def test_a_member_named_twice_is_a_dead_letter_on_both_paths(value: bytes, before: str) -> None:
    """The C path read the first of two equal names where the Python path kept the last,
    and answered replayed, stale or disabled before noticing; now the C path hands every
    such record over and both reject it (`duplicate_member`)."""
    entity_types = ["resource"] if before == "disabled" else ["service", "resource"]
    pair = Pair(Settings(instance_id="t", private_fields=["note"], entity_types=entity_types))
    offset = 5
    if before in ("created", "replayed", "stale"):
        pair.feed(_upsert(5, b'{"id":"k","name":"a"}'))
        offset = {"created": 6, "replayed": 4, "stale": 7}[before]
    timestamp = 1_600_000_000_000 if before == "stale" else 1_700_000_000_100
    handled = pair.fast.native_records
    result = pair.feed(InputRecord(TOPIC, 0, offset, timestamp, b"k", value, []))
    assert (result.outcome, result.reason) == ("dead_letter", "duplicate_member")
    assert pair.fast.native_records == handled  # handed over


@pytest.mark.parametrize(
    ("offset", "timestamp", "partition"),
    [
        (2**63, 1_700_000_000_000, 0),
        (-(2**63) - 1, 1_700_000_000_000, 0),
        (7, 2**63, 0),
        (7, -(2**63) - 1, 0),
        (7, 2**64, 0),
        (7, 1_700_000_000_000, 2**63),
    ],
)
def test_metadata_outside_int64_is_handed_over(offset: int, timestamp: int, partition: int) -> None:
    """It used to raise OverflowError out of the engine: a poison pill."""
    engine = new_task(Settings(instance_id="t")).core.engine
    assert engine is not None
    value = b'{"entityType":"service","instance":{"id":"k"}}'
    assert engine.process(value, b"k", "k", partition, offset, timestamp, None, None) is None
    tombstone = engine.process(None, b"k", "k", partition, offset, timestamp, None, None)
    assert tombstone is None


def test_a_corrupt_packed_state_is_handed_over() -> None:
    """A held href that is not UTF-8 made the engine raise UnicodeDecodeError; a state the
    Python path cannot unpack is now handed over, whatever is wrong with it."""
    task = new_task(Settings(instance_id="t"))
    task.process(_upsert(1, b'{"id":"k","href":"/ab"}'))
    task.commit()
    held = task.store.get(0, "k")
    assert held is not None and held.count(b"/ab") == 1
    corrupt = held.replace(b"/ab", b"\xff/k")  # inline, ends with the key, not UTF-8
    with pytest.raises(ValueError, match="corrupt"):
        task.store.form.load("k", corrupt)
    engine = task.core.engine
    assert engine is not None
    delete = b'{"entityType":"service","operation":"delete"}'
    for value in (delete, None, b'{"entityType":"service","instance":{"id":"k"}}'):
        answer = engine.process(value, b"k", "k", 0, 2, 1_700_000_000_002, None, corrupt)
        assert answer is None
