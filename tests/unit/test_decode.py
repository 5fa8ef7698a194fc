"""Decoding (docs/design.md#input-change-records) and dead letters (docs/runtime.md#exactly-once):
every reason code, never an exception."""

from __future__ import annotations

import io
import json
import struct

import fastavro
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor import dlq
from processor.records import REASONS, WRITABLE_DEPTH, Change, Decoder, InputRecord, Rejection
from processor.schemas import load_avro_schema
from processor.timefmt import format_ms

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
KEY = "svc-1"
INSTANCE = {"id": KEY, "name": "Internet", "state": "active"}
GOOD = {"entityType": "service", "observedAt": "2026-01-01T10:00:00Z", "instance": INSTANCE}
TS = 1_767_261_600_000
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _json(**changes):
    record = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not _DROP})


_DROP = object()


def _nested(depth: int, limit_members: int = 2) -> bytes:
    """A change record whose JSON nesting depth is exactly `depth` (root object = 1)."""
    lists = depth - limit_members  # root object and instance object come first
    inner = b"[" * lists + b"]" * lists
    return (
        b'{"entityType":"service","instance":{"id":"svc-1","deep":' + inner + b"}}"
        if lists > 0
        else b'{"entityType":"service","instance":{"id":"svc-1"}}'
    )


_DUPLICATE_ID = b'{"entityType":"service","instance":{"id":"svc-1","id":1}}'

# (name, record value, key, timestamp, expected reason)
CASES = [
    ("value not UTF-8", b'{"entityType": "service", "x": "\xff"}', KEY, TS, "invalid_utf8"),
    ("value latin-1", '{"entityType": "caf\xe9"}'.encode("latin-1"), KEY, TS, "invalid_utf8"),
    ("key not UTF-8", _json(), b"\xff\xfe", TS, "invalid_utf8"),
    ("truncated JSON", b'{"entityType": "service",', KEY, TS, "invalid_json"),
    ("not JSON", b"hello", KEY, TS, "invalid_json"),
    ("empty value", b"", KEY, TS, "invalid_json"),
    ("NaN", b'{"entityType": "service", "x": NaN}', KEY, TS, "invalid_json"),
    ("no entityType", _json(entityType=_DROP), KEY, TS, "schema_violation"),
    ("entityType number", _json(entityType=1), KEY, TS, "schema_violation"),
    ("entityType null", _json(entityType=None), KEY, TS, "schema_violation"),
    ("unknown operation", _json(operation="merge"), KEY, TS, "schema_violation"),
    ("operation null", _json(operation=None), KEY, TS, "schema_violation"),
    ("extra member", _json(extra=1), KEY, TS, "schema_violation"),
    ("observedAt number", _json(observedAt=1767261600000), KEY, TS, "schema_violation"),
    ("correlationId number", _json(correlationId=7), KEY, TS, "schema_violation"),
    ("id number", _json(id=1), KEY, TS, "schema_violation"),
    ("instance a list", _json(instance=[INSTANCE]), KEY, TS, "schema_violation"),
    ("instance a string", _json(instance="{}"), KEY, TS, "schema_violation"),
    ("instance without id", _json(instance={"name": "x"}), KEY, TS, "schema_violation"),
    ("instance id number", _json(instance={"id": 1}), KEY, TS, "schema_violation"),
    ("value an array", b"[1, 2]", KEY, TS, "schema_violation"),
    ("value null", b"null", KEY, TS, "schema_violation"),
    ("value a string", b'"svc-1"', KEY, TS, "schema_violation"),
    ("no key", _json(), None, TS, "missing_key"),
    ("empty key", _json(), b"", TS, "missing_key"),
    ("id differs from key", _json(id="svc-2"), KEY, TS, "id_mismatch"),
    ("instance.id differs", _json(instance={**INSTANCE, "id": "svc-2"}), KEY, TS, "id_mismatch"),
    ("id and instance differ", _json(id=KEY, instance={"id": "x"}), KEY, TS, "id_mismatch"),
    ("upsert without instance", _json(instance=_DROP), KEY, TS, "missing_instance"),
    ("upsert instance null", _json(instance=None), KEY, TS, "missing_instance"),
    ("explicit upsert", _json(operation="upsert", instance=_DROP), KEY, TS, "missing_instance"),
    ("entity type product", _json(entityType="product"), KEY, TS, "unknown_entity_type"),
    ("entity type Service", _json(entityType="Service"), KEY, TS, "unknown_entity_type"),
    ("observedAt words", _json(observedAt="yesterday"), KEY, TS, "invalid_timestamp"),
    ("observedAt month 13", _json(observedAt="2026-13-01T00:00:00Z"), KEY, TS, "invalid_timestamp"),
    ("observedAt Feb 30", _json(observedAt="2026-02-30T00:00:00Z"), KEY, TS, "invalid_timestamp"),
    ("no offset", _json(observedAt="2026-01-01T10:00:00"), KEY, TS, "invalid_timestamp"),
    ("date only", _json(observedAt="2026-01-01"), KEY, TS, "invalid_timestamp"),
    ("member twice", _DUPLICATE_ID, KEY, TS, "duplicate_member"),
    ("no time at all", _json(observedAt=_DROP), KEY, None, "missing_timestamp"),
    ("tombstone no time", None, KEY, None, "missing_timestamp"),
    ("negative timestamp", _json(observedAt=_DROP), KEY, -1, "missing_timestamp"),
]


@pytest.mark.parametrize(
    ("value", "key", "timestamp", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_records_become_dead_letters_with_their_reason(harness, value, key, timestamp, reason):
    headers = [("traceparent", b"00-abc-def-01"), ("origin", b"crm")]
    sent = harness.send(value, key=key, timestamp=timestamp, headers=headers, partition=2)

    assert sent.outcome == "dead_letter"
    assert sent.reason == reason, sent.dead_letter.headers
    _assert_dead_letter(sent.dead_letter, sent.record, reason, "tmf-events-dlq")
    assert harness.task.store.partitions.get(2, {}) == {}


def _assert_dead_letter(letter, record, reason, topic):
    assert letter.topic == topic
    assert letter.value == record.value  # the original bytes, untouched
    assert letter.key == record.key
    assert letter.partition == record.partition
    assert letter.headers[: len(record.headers)] == record.headers
    added = letter.headers[len(record.headers) :]
    assert [name for name, _ in added] == [
        "tmf-events-error",
        "tmf-events-error-message",
        "tmf-events-source-topic",
        "tmf-events-source-partition",
        "tmf-events-source-offset",
    ]
    values = dict(added)
    assert values["tmf-events-error"] == reason.encode()
    assert values["tmf-events-error-message"]  # says what is wrong
    values["tmf-events-error-message"].decode("utf-8")
    assert values["tmf-events-source-topic"] == record.topic.encode()
    assert values["tmf-events-source-partition"] == str(record.partition).encode()
    assert values["tmf-events-source-offset"] == str(record.offset).encode()


def test_every_reason_code_is_covered():
    covered = {case[-1] for case in CASES} | {
        "entity_type_mismatch",  # test_decide.py and below
        "too_large",
        "too_deep",
        "invalid_avro",
    }
    assert covered == set(REASONS)


def test_entity_type_mismatch_dead_letter(harness):
    harness.send({**GOOD, "observedAt": "2026-01-01T10:00:00Z"})
    sent = harness.send({**GOOD, "entityType": "resource", "observedAt": "2026-01-01T10:00:01Z"})
    assert sent.reason == "entity_type_mismatch"
    _assert_dead_letter(sent.dead_letter, sent.record, "entity_type_mismatch", "tmf-events-dlq")
    message = dict(sent.dead_letter.headers)["tmf-events-error-message"].decode()
    assert "resource" in message and "service" in message


def test_dead_letter_topic_from_settings(make_harness):
    harness = make_harness(app_id="inv")
    sent = harness.send(b"garbage", key=KEY)
    assert sent.dead_letter.topic == "inv-dlq"
    custom = make_harness(dlq_topic="bad-input").send(b"garbage", key=KEY)
    assert custom.dead_letter.topic == "bad-input"


def test_dead_letter_of_a_tombstone_keeps_the_null_value(harness):
    sent = harness.send(None, key=b"\xff", timestamp=TS)
    assert sent.reason == "invalid_utf8"
    assert sent.dead_letter.value is None


def test_value_faults_come_before_a_missing_key(harness):
    assert harness.send(b"{", key=None).reason == "invalid_json"


# --------------------------------------------------------------------------------------
# limits


def test_too_large(make_harness):
    value = _json()
    harness = make_harness(max_record_bytes=len(value) - 1)
    sent = harness.send(value, key=KEY)
    assert sent.reason == "too_large"
    _assert_dead_letter(sent.dead_letter, sent.record, "too_large", "tmf-events-dlq")


def test_exactly_the_size_limit_passes(make_harness):
    value = _json()
    assert make_harness(max_record_bytes=len(value)).send(value, key=KEY).outcome == "emit"


def test_default_size_limit_is_one_mebibyte(harness):
    padding = "x" * (1024 * 1024)
    sent = harness.send(_json(instance={**INSTANCE, "blob": padding}), key=KEY)
    assert sent.reason == "too_large"


@pytest.mark.parametrize("limit", [3, 5, 64])
def test_too_deep_and_exactly_the_depth_limit_passes(make_harness, limit):
    harness = make_harness(max_json_depth=limit)
    at_limit = harness.send(_nested(limit), key=KEY)
    assert at_limit.outcome == "emit"
    over = harness.send(_nested(limit + 1), key=KEY)
    assert over.reason == "too_deep"
    _assert_dead_letter(over.dead_letter, over.record, "too_deep", "tmf-events-dlq")


def test_brackets_inside_strings_do_not_count_as_depth(make_harness):
    harness = make_harness(max_json_depth=3)
    value = _json(instance={**INSTANCE, "text": "[[[[{{{{"})
    assert harness.send(value, key=KEY).outcome == "emit"


def test_deeper_than_the_json_parser_allows_is_too_deep(harness):
    """Nesting beyond the parser's own limit (orjson: 1024) is still `too_deep`."""
    sent = harness.send(_nested(2000), key=KEY)
    assert sent.reason == "too_deep"


# --------------------------------------------------------------------------------------
# Avro input


def _avro(record: dict, *, confluent_schema_id: int | None = None) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_avro_schema("change-record"), record)
    body = buf.getvalue()
    if confluent_schema_id is None:
        return body
    return b"\x00" + struct.pack(">I", confluent_schema_id) + body


AVRO_GOOD = {
    "entityType": "service",
    "operation": "upsert",
    "id": KEY,
    "observedAt": "2026-01-01T10:00:00.250Z",
    "correlationId": "order-1",
    "instance": orjson.dumps(INSTANCE).decode(),
}


@pytest.mark.parametrize("schema_id", [None, 1, 1234])
def test_avro_records_decode(make_harness, schema_id):
    harness = make_harness(input_format="avro")
    sent = harness.send(_avro(AVRO_GOOD, confluent_schema_id=schema_id), key=KEY)
    assert sent.names == ["ServiceCreateEvent"]
    event = sent.event
    assert event.payload == INSTANCE
    assert event.body["correlationId"] == "order-1"
    assert event.body["eventTime"] == "2026-01-01T10:00:00.250Z"


def test_avro_delete_and_tombstone(make_harness):
    harness = make_harness(input_format="avro")
    harness.send(_avro(AVRO_GOOD), key=KEY)
    delete = {**AVRO_GOOD, "operation": "delete", "instance": None, "observedAt": None}
    assert harness.send(_avro(delete), key=KEY).names == ["ServiceDeleteEvent"]
    harness.send(_avro({**AVRO_GOOD, "observedAt": None}), key=KEY)
    assert harness.send(None, key=KEY).names == ["ServiceDeleteEvent"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xff\xff", "invalid_avro"),
        (b"\x80", "invalid_avro"),
        (b"", "invalid_avro"),
        (b"\x0eservice", "invalid_avro"),  # truncated after the first field
        (b"\x00\x00\x00\x00\x01", "invalid_avro"),  # wire-format header without a body
        (orjson.dumps(GOOD), "invalid_avro"),  # JSON on an Avro topic
        (_avro({**AVRO_GOOD, "instance": "{not json"}), "invalid_json"),
        (_avro({**AVRO_GOOD, "operation": "merge"}), "schema_violation"),
        (_avro({**AVRO_GOOD, "entityType": "product"}), "unknown_entity_type"),
        (_avro({**AVRO_GOOD, "instance": None}), "missing_instance"),
        (_avro({**AVRO_GOOD, "instance": "[]"}), "schema_violation"),
        (_avro({**AVRO_GOOD, "id": "other"}), "id_mismatch"),
        (_avro({**AVRO_GOOD, "observedAt": "soon"}), "invalid_timestamp"),
    ],
    ids=[
        "ff",
        "80",
        "empty",
        "truncated",
        "wire-header-only",
        "json",
        "instance-not-json",
        "bad-operation",
        "bad-entity",
        "no-instance",
        "instance-array",
        "id-mismatch",
        "bad-time",
    ],
)
def test_bad_avro_records(make_harness, value, reason):
    harness = make_harness(input_format="avro")
    sent = harness.send(value, key=KEY)
    assert sent.reason == reason
    _assert_dead_letter(sent.dead_letter, sent.record, reason, "tmf-events-dlq")


@pytest.mark.parametrize("limit", [300, 10_000])
def test_nesting_orjson_cannot_write_is_too_deep_whatever_the_limit(make_harness, limit):
    """An event nests the instance a level deeper than the record; orjson writes at most 254
    levels, so a record deeper than 253 is `too_deep` even where the setting allows more
    (it used to raise from the core instead: orjson's TypeError)."""
    harness = make_harness(max_json_depth=limit)
    assert harness.send(_nested(WRITABLE_DEPTH), key=KEY).outcome == "emit"
    for depth in (WRITABLE_DEPTH + 1, 254, 260, 1000):
        sent = harness.send(_nested(depth), key=KEY)
        assert sent.reason == "too_deep", depth


def test_an_avro_instance_orjson_cannot_write_is_too_deep(make_harness):
    """An Avro record's instance text starts a level below a JSON record's."""
    harness = make_harness(input_format="avro", max_json_depth=1000)
    for depth, outcome in ((WRITABLE_DEPTH - 1, "emit"), (WRITABLE_DEPTH, "dead_letter")):
        deep = {**INSTANCE, "x": _lists(depth - 1)}
        sent = harness.send(_avro({**AVRO_GOOD, "instance": orjson.dumps(deep).decode()}), key=KEY)
        assert sent.outcome == outcome, depth


def _lists(depth: int) -> list[object]:
    inner: list[object] = []
    for _ in range(depth - 1):
        inner = [inner]
    return inner


def test_avro_instance_depth_is_limited(make_harness):
    harness = make_harness(input_format="avro", max_json_depth=3)
    deep = {**INSTANCE, "x": [[[]]]}
    sent = harness.send(_avro({**AVRO_GOOD, "instance": orjson.dumps(deep).decode()}), key=KEY)
    assert sent.reason == "too_deep"


# --------------------------------------------------------------------------------------
# the Decoder on its own


def test_decoder_yields_a_change():
    record = InputRecord(
        "inventory.changes",
        0,
        0,
        TS,
        KEY.encode(),
        _json(correlationId="c"),
        [("traceparent", TRACEPARENT)],
    )
    change = Decoder().decode(record)
    assert change == Change(
        key=KEY,
        entity_type="service",
        operation="upsert",
        time_ms=TS,
        correlation_id="c",
        instance=INSTANCE,
        traceparent=TRACEPARENT,
    )


def test_decoder_delete_drops_the_instance_and_uses_the_record_timestamp():
    value = orjson.dumps({"entityType": "resource", "operation": "delete", "instance": INSTANCE})
    change = Decoder().decode(InputRecord("t", 0, 0, 42, KEY.encode(), value, []))
    assert isinstance(change, Change)
    assert (change.operation, change.instance, change.time_ms) == ("delete", None, 42)


def test_decoder_tombstone():
    change = Decoder().decode(InputRecord("t", 0, 0, 42, KEY.encode(), None, []))
    assert change == Change(KEY, None, "delete", 42, None, None, None)


def test_observed_at_wins_over_the_record_timestamp():
    value = _json(observedAt="2026-01-01T11:00:00+01:00")
    change = Decoder().decode(InputRecord("t", 0, 0, 42, KEY.encode(), value, []))
    assert isinstance(change, Change) and change.time_ms == TS


def test_rejection_messages_are_short_and_name_the_problem():
    value = _json(observedAt="x" * 10_000)
    rejection = Decoder().decode(InputRecord("t", 0, 0, TS, KEY.encode(), value, []))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid_timestamp"
    assert len(rejection.message) < 200


def test_dead_letter_helper_keeps_original_headers_first():
    record = InputRecord("in", 3, 99, TS, b"k", b"v", [("a", b"1"), ("b", None)])
    letter = dlq.dead_letter(record, Rejection("invalid_json", "bad \udcff"), "dlq")
    assert letter.headers[:2] == [("a", b"1"), ("b", None)]
    assert dict(letter.headers)[dlq.ERROR_MESSAGE] == b"bad ?"
    assert (letter.topic, letter.partition, letter.key, letter.value) == ("dlq", 3, b"k", b"v")


# --------------------------------------------------------------------------------------
# times the event id and RFC 3339 cannot carry


@pytest.mark.parametrize(
    ("observed_at", "timestamp"),
    [
        ("9999-12-31T23:59:59-01:00", TS),  # year 10000 in UTC
        ("0001-01-01T00:00:00+01:00", TS),  # year 0 in UTC
        ("0999-06-01T00:00:00Z", TS),  # a three-digit year once formatted
        ("1969-12-31T23:59:59.999Z", TS),  # before the UUIDv7 epoch
        (_DROP, 10**17),  # a record timestamp in microseconds by mistake (year ~5138)
        (_DROP, MAX_MS + 1),  # one ms after 9999-12-31T23:59:59.999Z
        (_DROP, (1 << 48) + 5),  # beyond the 48-bit UUIDv7 time field
    ],
    ids=["year-10000", "year-0", "year-999", "before-1970", "ts-micros", "ts-10000", "ts-2^48"],
)
def test_out_of_range_times_are_dead_letters_not_exceptions(harness, observed_at, timestamp):
    """Never an exception; an emitted eventTime is RFC 3339 and the eventId carries it."""
    sent = harness.send(_json(observedAt=observed_at), key=KEY, timestamp=timestamp)
    if sent.outcome == "dead_letter":
        assert sent.reason == "invalid_timestamp"
        return
    for event in sent.events:  # the harness has validated each against its schema
        embedded = int(event.id.replace("-", "")[:12], 16)
        assert format_ms(embedded) == event.body["eventTime"]


def test_out_of_range_tombstone_time_is_not_an_exception(harness):
    harness.send(_json(), key=KEY, timestamp=TS)
    sent = harness.send(None, key=KEY, timestamp=10**17)
    assert sent.outcome == "dead_letter" and sent.reason == "invalid_timestamp"


def test_latest_representable_time_is_fine(harness):
    sent = harness.send(_json(observedAt="9999-12-31T23:59:59.999Z"), key=KEY)
    assert sent.event.body["eventTime"] == "9999-12-31T23:59:59.999Z"


# --------------------------------------------------------------------------------------
# instances whose well-known members the event schemas constrain


@pytest.mark.parametrize(
    ("version", "entity", "instance"),
    [
        ("v4", "service", {"id": KEY, "state": "Active"}),  # wrong case
        ("v5", "service", {"id": KEY, "operatingStatus": "UP"}),
        ("v4", "service", {"id": KEY, "href": 5}),
        ("v4", "service", {"id": KEY, "name": 5}),
        ("v4", "service", {"id": KEY, "@type": None}),
        ("v5", "service", {"id": KEY, "@type": None}),  # v5 defaults a missing @type
        ("v4", "resource", {"id": KEY, "operationalState": "enabled"}),  # the v5 spelling
        ("v5", "resource", {"id": KEY, "operationalState": "enable"}),  # the v4 spelling
        ("v5", "resource", {"id": KEY, "alarmStatus": "major"}),  # not a list
    ],
    ids=[
        "v4-state-case",
        "v5-operating-status",
        "href-number",
        "name-number",
        "v4-type-null",
        "v5-type-null",
        "v4-resource-v5-enum",
        "v5-resource-v4-enum",
        "v5-alarm-status-string",
    ],
)
def test_instance_members_the_event_schema_forbids_are_not_emitted(
    make_harness, version, entity, instance
):
    """docs/design.md#output-tmf-events-as-cloudevents: every emitted event validates against its
    ce_dataschema. An instance that would break that is bad input (a schema_violation dead letter),
    never an invalid event; the harness validates any event that does come out."""
    harness = make_harness(tmf_version=version)
    sent = harness.send({"entityType": entity, "instance": instance}, key=KEY)
    assert sent.outcome in {"emit", "dead_letter"}
    if sent.outcome == "dead_letter":
        assert sent.reason == "schema_violation"


# --------------------------------------------------------------------------------------
# duplicate member names (docs/design.md#input-change-records)


@pytest.mark.parametrize(
    "value",
    [
        b'{"entityType":"service","entityType":"service","instance":{"id":"svc-1"}}',
        b'{"entityType":"service","instance":{"id":"svc-1","id":"svc-1"}}',
        b'{"entityType":"service","instance":{"id":"svc-1","id":"other"}}',
        b'{"entityType":"service","instance":{"id":"svc-1","note":1,"note":2}}',
        b'{"entityType":"service","instance":{"id":"svc-1","x":[{"a":1},{"b":1,"b":1}]}}',
        b'{"entityType":"service","instance":{"id":"svc-1","a":1,"\\u0061":2}}',
        b'{"entityType":"service","instance":{"id":"svc-1","":1,"":1}}',
        b'{"entityType" : "service" , "instance" : {"id" : "svc-1" , "x" : {"y":1 , "y" : 2}}}',
        b'{"entityType":"service","instance":{"id":"svc-1","q\\":":1,"q\\":":2}}',
    ],
)
def test_a_member_named_twice_at_any_depth_is_a_dead_letter(harness, value):
    """orjson would keep the last of them silently; the contract keeps neither."""
    sent = harness.send(value, key=KEY)
    assert sent.reason == "duplicate_member"
    _assert_dead_letter(sent.dead_letter, sent.record, "duplicate_member", "tmf-events-dlq")


@pytest.mark.parametrize(
    "value",
    [
        b'{"entityType":"service","instance":{"id":"svc-1","a":{"a":{"a":1}}}}',
        b'{"entityType":"service","instance":{"id":"svc-1","x":[{"a":1},{"a":1}]}}',
        b'{"entityType":"service","instance":{"id":"svc-1","a:b":"c:d","\\u003a":"\\u003a"}}',
        b'{"entityType":"service","instance":{"id":"svc-1","q\\"":"\\":\\\\","r\\\\":":"}}',
    ],
)
def test_equal_names_in_different_objects_are_fine(harness, value):
    assert harness.send(value, key=KEY).outcome == "emit"


def test_an_avro_instance_naming_a_member_twice_is_a_dead_letter(make_harness):
    harness = make_harness(input_format="avro")
    twice = '{"id": "svc-1", "name": "a", "name": "b"}'
    sent = harness.send(_avro({**AVRO_GOOD, "instance": twice}), key=KEY)
    assert sent.reason == "duplicate_member"


_json_names = st.sampled_from(["a", "b", ":", 'q"', "\\", "é", "", "a:b", "\\u003a", "\\\\"])
_json_leaves = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    _json_names,
)


@st.composite
def _member_lists(draw: st.DrawFn, depth: int = 3) -> str:
    """JSON text of an object whose member names may repeat, written with escapes at will."""
    members = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_json_names)
        if depth > 0 and draw(st.booleans()):
            member_value = draw(_member_lists(depth - 1))
        elif depth > 0 and draw(st.booleans()):
            member_value = "[" + ",".join(draw(st.lists(_member_lists(0), max_size=2))) + "]"
        else:
            member_value = json.dumps(draw(_json_leaves), ensure_ascii=draw(st.booleans()))
        spaced = draw(st.booleans())
        key = json.dumps(name, ensure_ascii=draw(st.booleans()))
        if draw(st.booleans()):
            key = key.replace(":", "\\u003a")  # the same name, its colon escaped
        members.append(key + (" : " if spaced else ":") + member_value)
    return "{" + ", ".join(members) + "}"


def _names_a_member_twice(text: str) -> bool:
    found = False

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal found
        found |= len({k for k, _ in items}) != len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found


@given(_member_lists())
def test_duplicate_members_are_found_exactly(instance: str) -> None:
    value = ('{"entityType":"service","instance":{"id":"svc-1","x":' + instance + "}}").encode()
    record = InputRecord("t", 0, 0, TS, KEY.encode(), value, [])
    decoded = Decoder().decode(record)
    rejected = isinstance(decoded, Rejection) and decoded.reason == "duplicate_member"
    assert rejected == _names_a_member_twice(value.decode()), decoded
