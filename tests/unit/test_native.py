"""The C fast path (processor/native) against the Python path it stands in for.

Both cores see the same records in the same order, each with its own packed store; every
result must be the same: outcome, messages byte for byte (value, key, headers, topic), the
changelog value and the packed state. The C path may hand a record to the Python path (it
then returns None), never answer differently.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor import native
from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.messages import Result
from processor.records import InputRecord
from processor.state.packed import pack
from processor.task import new_task
from processor.timefmt import MAX_MS, InvalidTimestampError, format_ms, parse_ms

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


@given(st.binary(max_size=300))
def test_crc32_is_zlibs(data: bytes) -> None:
    assert _native.crc32(data) == zlib.crc32(data)


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
