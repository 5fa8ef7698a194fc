"""The hand-written Avro codec of the changelog value (`processor.state`, docs/state.md).

`encode_state` / `decode_state` implement `schemas/state-record.avsc` by hand for speed; these
properties pin them to fastavro byte for byte, over random states (boundary and huge longs,
any unicode, missing optionals, 0..3 stored events, empty attribute names), and check that
corrupt or truncated input fails with ValueError and nothing else.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.schemas import load_avro_schema
from processor.state.codec import decode_state, encode_state, to_avro_dict, without_events
from processor.state.model import State, StoredEvent
from tests.state_strategies import BOUNDARIES, states

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _schema() -> dict[str, Any]:
    return load_avro_schema("state-record")


def fastavro_encode(state: State) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _schema(), to_avro_dict(state))
    return out.getvalue()


def fastavro_decode(data: bytes) -> dict[str, Any]:
    source = io.BytesIO(data)
    record = fastavro.schemaless_reader(source, _schema(), None)
    assert source.tell() == len(data), "fastavro did not read the whole value"
    assert isinstance(record, dict)
    return record


# -- the same bytes as fastavro ------------------------------------------------------------------


@PROPERTY
@given(states)
def test_encode_equals_fastavro_writer(state: State) -> None:
    """fastavro reads our bytes as the same record; without events they are its very bytes
    (events are written as one block with a byte size, which fastavro's writer does not do)."""
    ours = encode_state(state)
    assert fastavro_decode(ours) == to_avro_dict(state)
    if not state.events:
        assert ours == fastavro_encode(state)


@PROPERTY
@given(states)
def test_decode_equals_fastavro_reader(state: State) -> None:
    data = fastavro_encode(state)
    decoded = decode_state(data)
    assert to_avro_dict(decoded) == fastavro_decode(data)
    assert decoded == state
    assert isinstance(decoded.events, tuple)


@PROPERTY
@given(states)
def test_round_trip_through_own_codec(state: State) -> None:
    assert decode_state(encode_state(state)) == state


@pytest.mark.parametrize("value", BOUNDARIES)
def test_boundary_longs_in_every_long_field(value: int) -> None:
    bare = dict.fromkeys(("href", "at_type", "last_event_id", "last_event_type", "last_event_time"))
    state = replace(_simple_state(), version=value, observed_at=value, offset=value, **bare)
    assert encode_state(state) == fastavro_encode(state)
    assert decode_state(encode_state(state)) == state


def test_decodes_arrays_written_in_blocks_with_byte_sizes() -> None:
    """Events go first, as one block with a negative count and its byte size; a reader that
    needs no events (`without_events`) skips them in one step, and fastavro's own layout
    (a positive count, no size) decodes to the same state."""
    events = tuple(StoredEvent(f"id{i}", "T", "t", "topic", "{}") for i in range(3))
    state = _simple_state(events=events)
    ours = encode_state(state)
    assert ours[0] == 5  # zig-zag of -3: three items, byte size follows
    assert decode_state(ours) == state == decode_state(fastavro_encode(state))
    slim = without_events(ours)
    assert slim == encode_state(replace(state, events=()))
    assert without_events(fastavro_encode(state)) == slim
    assert without_events(slim) is slim


# -- corrupt input ---------------------------------------------------------------------------


def _simple_state(events: tuple[StoredEvent, ...] = ()) -> State:
    return State(
        entity_type="resource",
        version=7,
        hash=bytes(range(16)),
        attr_names="name\x00href\x00@type",
        attr_digests=bytes(24),
        deleted=False,
        observed_at=1_767_261_600_000,
        offset=123_456,
        href="/resource/r-1",
        at_type="PhysicalResource",
        last_event_id="0199ffff-0000-7000-8000-000000000000",
        last_event_type="ResourceStateChangeEvent",
        last_event_time="2026-01-01T10:00:00.000Z",
        events=events,
    )


def _avro_long(n: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", n)
    return out.getvalue()


def _avro_str(s: str) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "string", s)
    return out.getvalue()


@PROPERTY
@given(states, st.data())
def test_every_truncation_raises_value_error(state: State, data: st.DataObject) -> None:
    encoded = encode_state(state)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1), label="cut")
    with pytest.raises(ValueError):
        decode_state(encoded[:cut])


def test_all_truncations_of_a_full_record_raise_value_error() -> None:
    encoded = encode_state(_simple_state(events=(StoredEvent("i", "t", "tm", "tp", "{}"),)))
    for cut in range(len(encoded)):
        with pytest.raises(ValueError):
            decode_state(encoded[:cut])


def test_empty_input_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_state(b"")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("invalid UTF-8 in a string", _avro_long(2) + b"\xff\xfe"),
        ("negative string length", _avro_long(-5) + b"service"),
        ("length beyond the end", _avro_long(100) + b"service"),
        ("unterminated varint", b"\x80\x80\x80"),
    ],
)
def test_corrupt_prefix_raises_value_error(name: str, data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_state(data)


def test_bad_union_branch_raises_value_error() -> None:
    state = _simple_state()
    encoded = encode_state(state)
    # Without optionals the value ends in five null branches (five bytes); the first of them
    # is where `href`'s branch index sits.
    bare = replace(
        state,
        href=None,
        at_type=None,
        last_event_id=None,
        last_event_type=None,
        last_event_time=None,
    )
    branch_at = len(encode_state(bare)) - 5
    assert encoded[branch_at] == 2  # branch 1 (zig-zag 2): a string follows
    for bad in (b"\x04", b"\x01", b"\x7e"):  # branches 2, -1, 63
        corrupt = encoded[:branch_at] + bad + encoded[branch_at + 1 :]
        with pytest.raises(ValueError):
            decode_state(corrupt)


def test_boolean_byte_other_than_0_or_1_raises_value_error() -> None:
    """Avro writes a boolean as exactly 0 or 1. Any other byte in the `deleted` position is
    corruption: fastavro reads it as true, so silently reading it as false (a deleted instance
    coming back as live) is the one answer that must not happen."""
    state = _simple_state()
    encoded = encode_state(state)
    head = encode_state(replace(state, deleted=False))
    # `deleted` follows the (empty) events, entityType, version, hash, attrNames, attrDigests.
    at = (
        1
        + len(_avro_str(state.entity_type))
        + len(_avro_long(state.version))
        + len(_avro_long(len(state.hash)))
        + len(state.hash)
        + len(_avro_str(state.attr_names))
        + len(_avro_long(len(state.attr_digests)))
        + len(state.attr_digests)
    )
    assert head[at] == 0 and encode_state(replace(state, deleted=True))[at] == 1
    for bad in (2, 0x80, 0xFF):
        corrupt = encoded[:at] + bytes([bad]) + encoded[at + 1 :]
        assert fastavro_decode(corrupt)["deleted"] is True
        with pytest.raises(ValueError):
            decode_state(corrupt)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=80))
def test_random_bytes_decode_or_raise_value_error_only(data: bytes) -> None:
    try:
        state = decode_state(data)
    except ValueError:
        return
    assert isinstance(state, State)


@PROPERTY
@given(states, st.data())
def test_flipped_byte_decodes_or_raises_value_error_only(state: State, data: st.DataObject) -> None:
    encoded = bytearray(encode_state(state))
    at = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1), label="at")
    encoded[at] ^= data.draw(st.integers(min_value=1, max_value=255), label="mask")
    with contextlib.suppress(ValueError):
        decode_state(bytes(encoded))
