"""Deterministic event ids (UUIDv7) and RFC 3339 times (docs/design.md#identity-and-determinism)."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import uuid6
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.ids import event_id
from processor.timefmt import format_ms, parse_ms

T = 1_767_261_600_123  # 2026-01-01T10:00:00.123Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
YEAR_1000_MS = -30_610_224_000_000  # 1000-01-01T00:00:00.000Z
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)
CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# --------------------------------------------------------------------------------------
# event ids


def test_event_id_is_a_uuid7_with_the_event_time():
    text = event_id(T, "inventory.changes", 3, 1234, 0)
    value = uuid.UUID(text)
    assert str(value) == text  # canonical lower-case form
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == T
    assert (value.int >> 76) & 0xF == 7
    assert (value.int >> 62) & 0b11 == 0b10


@DETERMINISTIC
@given(
    time_ms=st.integers(0, (1 << 48) - 1),
    topic=st.text(min_size=1, max_size=20),
    partition=st.integers(0, 1000),
    offset=st.integers(0, (1 << 63) - 1),
    index=st.integers(0, 10),
)
def test_event_id_layout_for_any_coordinates(time_ms, topic, partition, offset, index):
    value = uuid.UUID(event_id(time_ms, topic, partition, offset, index))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == time_ms
    # An independent reading of RFC 9562's layout: uuid6's UUIDv7 gives the same instant.
    assert uuid6.UUID(str(value)).time == time_ms


def test_event_id_is_deterministic():
    assert event_id(T, "inventory.changes", 0, 5, 1) == event_id(T, "inventory.changes", 0, 5, 1)


def test_event_ids_differ_across_coordinates():
    coordinates = list(
        itertools.product(
            ["inventory.changes", "other"], [0, 1, 12], [0, 1, 2, 10, 1 << 40], [0, 1, 2]
        )
    )
    ids = {event_id(T, *c) for c in coordinates}
    assert len(ids) == len(coordinates)
    # the non-time bits alone tell the coordinates apart
    assert len({i[13:] for i in ids}) == len(coordinates)


def test_event_ids_do_not_collide_on_ambiguous_coordinates():
    # topic "a1" partition 2 versus topic "a" partition 12: the separator keeps them apart
    assert event_id(T, "a1", 2, 0, 0) != event_id(T, "a", 12, 0, 0)


def test_event_ids_sort_by_time():
    ids = [event_id(T + d, "t", 0, 100 - d, 0) for d in range(50)]
    assert ids == sorted(ids)


def test_same_coordinates_at_another_time_share_the_random_bits():
    a, b = event_id(T, "t", 0, 1, 0), event_id(T + 1, "t", 0, 1, 0)
    assert a[14:] == b[14:] and a != b


# --------------------------------------------------------------------------------------
# times


def test_format_ms():
    assert format_ms(T) == "2026-01-01T10:00:00.123Z"
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert format_ms(MAX_MS) == "9999-12-31T23:59:59.999Z"


@DETERMINISTIC
@given(st.integers(YEAR_1000_MS, MAX_MS))
def test_format_then_parse_round_trips(ms):
    text = format_ms(ms)
    assert CANONICAL.match(text), text
    assert parse_ms(text) == ms


@DETERMINISTIC
@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)))
def test_parse_agrees_with_datetime(dt):
    aware = dt.replace(tzinfo=UTC)
    expected = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_ms(aware.isoformat()) == expected
    assert parse_ms(aware.isoformat().replace("+00:00", "Z")) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00.123Z", T),
        ("2026-01-01T10:00:00.123z", T),
        ("2026-01-01t10:00:00.123Z", T),
        ("2026-01-01 10:00:00.123Z", T),
        ("2026-01-01T11:00:00.123+01:00", T),
        ("2026-01-01T04:30:00.123-05:30", T),
        ("2026-01-01T10:00:00.123-00:00", T),
        ("2026-01-01T10:00:00.123+00:00", T),
        ("2026-01-01T10:00:00Z", T - 123),
        ("2026-01-01T10:00:00.1Z", T - 23),
        ("2026-01-01T10:00:00.12Z", T - 3),
        ("2026-01-01T10:00:00.1239Z", T),  # sub-millisecond digits are truncated
        ("2026-01-01T10:00:00.123999Z", T),
        ("2026-01-01T10:00:00.123999999Z", T),
        ("2026-01-01T10:00:00.123456789+01:00", T - 3_600_000),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_parse_ms(text, expected):
    assert parse_ms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-01-01",
        "2026-01-01T10:00Z",
        "2026-01-01T10:00:00",
        "2026-01-01T10:00:00.123",
        "2026-01-01T10:00:00+0100",
        "2026-01-01T10:00:00+01",
        "2026-01-01T10:00:00UTC",
        "20260101T100000Z",
        "2026-1-01T10:00:00Z",
        " 2026-01-01T10:00:00Z",
        "2026-01-01T10:00:00Z ",
        "2026-01-01T10:00:00Z\n",
        "2026-01-01T10:00:00.Z",
        "2026-01-01T10:00:00.1234567890Z",
        "2026-01-01T10:00:00,123Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-01-01T25:00:00Z",
        "2026-01-01T10:60:00Z",
        "2026-01-01T10:00:00+25:00",
        "2026-01-01X10:00:00.123Z",
        "2026-01-01T10:00:00.12aZ",
        "2026-01-01T10:00:00.+12Z",
    ],
)
def test_invalid_timestamps_are_rejected(text):
    with pytest.raises(ValueError):
        parse_ms(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T10:00:00.\uff11\uff12\uff13Z",  # fullwidth digits in the fraction
        "2026-01-01T10:00:00.\u0661\u0662\u0663Z",  # Arabic-Indic digits
    ],
)
def test_non_ascii_digits_are_rejected(text):
    """RFC 3339 digits are ASCII (ABNF DIGIT = %x30-39); Python's str.isdigit/int/\\d are not."""
    with pytest.raises(ValueError):
        parse_ms(text)


@pytest.mark.parametrize(
    "text", ["0999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "0100-06-15T12:00:00.000Z"]
)
def test_early_years_format_as_four_digits(text):
    """Anything parse_ms accepts must come back out as RFC 3339 (four-digit year)."""
    assert format_ms(parse_ms(text)) == text


def test_formatted_times_are_valid_json_strings():
    assert orjson.loads(orjson.dumps(format_ms(T))) == "2026-01-01T10:00:00.123Z"
