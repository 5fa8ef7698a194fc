"""The packed in-memory form of states (`processor.state.packed`) and the store using it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.state.codec import encode_state, without_events
from processor.state.model import State, StoredEvent
from processor.state.packed import MARK, Profiles, pack, pack_changelog, unpack
from processor.state.store import StateStore
from processor.timefmt import MAX_MS, MIN_MS
from tests.state_strategies import states

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
P = Profiles()
KEY = "7b0c4a9e-3f5d-4c1e-9a2b-6d8e0f1a2b3c"


def _typical(**changes: object) -> State:
    state = State(
        entity_type="service",
        version=7,
        hash=bytes(range(16)),
        attr_names="\x00".join(["category", "href", "id", "name", "note", "state"]),
        attr_digests=bytes(range(24)),
        deleted=False,
        observed_at=1_767_225_601_230,
        offset=123,
        href=f"/tmf-api/serviceInventory/v4/service/{KEY}",
        at_type="CFS",
        last_event_id="019b76da-acce-72a6-acd5-56fb8554d420",
        last_event_type="ServiceAttributeValueChangeEvent",
        last_event_time="2026-01-01T00:00:01.230Z",
    )
    return replace(state, **changes)


@PROPERTY
@given(states, st.sampled_from([KEY, "", "a", "Ä-key"]))
def test_pack_unpack_gives_back_the_state_without_its_events(state: State, key: str) -> None:
    assert unpack(key, pack(key, state, P), P) == replace(state, events=())


@PROPERTY
@given(states)
def test_packing_a_changelog_value_equals_packing_its_state(state: State) -> None:
    assert pack_changelog(KEY, encode_state(state), P) == pack(KEY, replace(state, events=()), P)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"href": "/elsewhere/other-id"},  # does not end in the key: kept inline
        {"href": None, "at_type": None, "last_event_type": None},
        {"last_event_id": "019B76DA-ACCE-72A6-ACD5-56FB8554D420"},  # upper case: inline
        {"last_event_id": "not-a-uuid"},
        {"last_event_id": None, "last_event_time": None},
        {"last_event_time": "2026-01-01T01:00:01.230+01:00"},  # not canonical: inline
        {"last_event_time": "2026-01-01T00:00:09.999Z"},  # canonical, not observedAt: packed
        {"observed_at": 2**62, "last_event_time": "2026-01-01T00:00:01.230Z"},
        {"deleted": True, "hash": b"", "attr_names": "", "attr_digests": b""},
    ],
)
def test_every_field_comes_back_exactly(changes: dict[str, object]) -> None:
    state = _typical(**changes)
    packed = pack(KEY, state, P)
    assert packed[0] == MARK
    assert unpack(KEY, packed, P) == state


def test_a_typical_record_packs_to_a_fraction_of_its_slim_avro() -> None:
    state = _typical()
    slim = without_events(encode_state(state))
    packed = pack(KEY, state, P)
    assert len(packed) * 3 < len(slim), (len(packed), len(slim))


@pytest.mark.parametrize(
    "changes",
    [{}, {"href": "/elsewhere/x", "last_event_id": "X", "last_event_time": "later"}],
)
def test_every_truncation_of_a_packed_record_raises_value_error(
    changes: dict[str, object],
) -> None:
    packed = pack(KEY, _typical(**changes), P)
    for cut in range(len(packed)):
        with pytest.raises(ValueError):
            unpack(KEY, packed[:cut], P)
    with pytest.raises(ValueError):
        unpack(KEY, b"\x00" + packed[1:], P)


@pytest.mark.parametrize("observed_at", [MIN_MS - 1, MAX_MS + 1, 2**62, -(2**62)])
def test_a_time_no_state_of_ours_holds_is_a_corrupt_state(observed_at: int) -> None:
    """A last event time that is the observedAt (the packed shortcut) of an observedAt past
    year 9999: unpack raised OverflowError, where every corrupt state raises ValueError (the
    fuzzer found it, corrupting held states)."""
    packed = bytearray(pack(KEY, _typical(), P))
    packed[10:18] = observed_at.to_bytes(8, "little", signed=True)
    with pytest.raises(ValueError, match="corrupt"):
        unpack(KEY, bytes(packed), P)


def test_what_the_fixed_header_cannot_hold_is_kept_as_avro() -> None:
    state = _typical(hash=bytes(300), attr_digests=bytes(70_000))
    packed = pack(KEY, state, P)
    assert unpack(KEY, packed, P) == state
    assert pack_changelog(KEY, encode_state(state), P) == packed


@PROPERTY
@given(states)
def test_corrupt_changelog_values_fail_with_value_error_only(state: State) -> None:
    encoded = encode_state(state)
    for cut in range(0, len(encoded), 7):
        try:
            pack_changelog(KEY, encoded[:cut], P)
        except ValueError:
            continue


def test_profiles_are_content_addressed_and_merge_unless_they_conflict() -> None:
    a, b = Profiles(), Profiles()
    profile = ("service", "id\x00name", "CFS", "ServiceCreateEvent", "/x/")
    pid = a.intern(profile)
    assert pid is not None and len(pid) == 4
    assert b.intern(profile) == pid, "another process names a profile the same"
    assert b.merge(a.export())
    conflicting = Profiles()
    conflicting.by_id[pid] = ("resource", "", None, None, None)
    assert not conflicting.merge(a.export())
    assert conflicting.by_id[pid] == ("resource", "", None, None, None), "nothing adopted"


def test_a_colliding_profile_is_kept_inline() -> None:
    profiles = Profiles()
    profile = ("service", "id", None, None, "/x/")
    pid = profiles.intern(profile)
    assert pid is not None
    profiles.by_id[pid] = ("resource", "", None, None, None)  # as if another had that hash
    profiles.ids.clear()
    assert profiles.intern(profile) is None


def test_the_store_packs_at_history_1_and_keeps_avro_otherwise() -> None:
    state = replace(_typical(), events=(StoredEvent("e1", "T", "t", "topic", "{}"),))
    encoded = encode_state(state)
    slim = StateStore(keep_events=False)
    slim.put(0, KEY, slim.form.store(KEY, state, encoded))
    slim.put_changelog(0, "other", encoded)
    assert all(v[0] == MARK for v in slim.entries(0).values())
    assert slim.state(0, KEY) == replace(state, events=())
    assert slim.state(0, "other") == replace(state, events=(), href=state.href)
    full = StateStore(keep_events=True)
    full.put(0, KEY, full.form.store(KEY, state, encoded))
    assert full.entries(0) == {KEY: encoded}
    assert full.state(0, KEY) == state
    full.put_changelog(0, KEY, None)
    assert full.get(0, KEY) is None
