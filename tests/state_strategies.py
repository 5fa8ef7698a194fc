"""Hypothesis strategies for state records, shared by the codec and the compact-form tests."""

from __future__ import annotations

from hypothesis import strategies as st

from processor.state.model import State, StoredEvent

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Avro longs: the zig-zag boundaries of 1..10-byte varints, both signs, and anything in range.
BOUNDARIES = sorted(
    {0, 1, -1, 63, -64, 64, -65, INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1}
    | {
        sign * (2**bits) + delta
        for bits in range(6, 63, 7)
        for sign in (1, -1)
        for delta in (-1, 0, 1)
    }
)
longs = st.one_of(
    st.sampled_from(BOUNDARIES),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.integers(min_value=-300, max_value=300),
)
# Any unicode text (hypothesis leaves out lone surrogates, which UTF-8 cannot carry), with
# NULs, astral code points and long strings (multi-byte length prefixes) in the mix.
texts = st.one_of(
    st.text(max_size=20),
    st.text(
        alphabet=st.sampled_from(["\x00", "é", "€", "😀", "\u2028", "a", '"', "\\"]), max_size=10
    ),
    st.text(min_size=100, max_size=400),
)
optional_texts = st.one_of(st.none(), texts)
# Top-level attribute names, NUL-separated; empty names included ("", "\x00a", "a\x00\x00").
attr_names = st.lists(st.text(max_size=8).filter(lambda s: "\x00" not in s), max_size=5).map(
    "\x00".join
)

stored_events = st.builds(
    StoredEvent, id=texts, type=texts, time=texts, topic=texts, cloudevent=texts
)

states = st.builds(
    State,
    entity_type=texts,
    version=longs,
    hash=st.binary(max_size=40),
    attr_names=attr_names,
    attr_digests=st.binary(max_size=200),
    deleted=st.booleans(),
    observed_at=longs,
    offset=longs,
    href=optional_texts,
    at_type=optional_texts,
    last_event_id=optional_texts,
    last_event_type=optional_texts,
    last_event_time=optional_texts,
    events=st.lists(stored_events, max_size=3).map(tuple),
)
