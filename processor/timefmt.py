"""RFC 3339 timestamps: parse to epoch milliseconds, format as UTC with milliseconds and `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# RFC 3339 requires the full date, the time and an offset; fromisoformat alone accepts more.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
# The range RFC 3339 (four-digit years) can express, in epoch milliseconds.
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER_DAY = 86_400_000


class InvalidTimestampError(ValueError):
    """Not an RFC 3339 time the processor takes (or outside 1970-9999)."""


def parse_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp (sub-millisecond digits are truncated)."""
    # Fast path for the canonical form this tool itself writes: 2026-01-01T10:00:00.123Z
    if (
        len(text) == 24
        and text[23] == "Z"
        and text[19] == "."
        and text[20:23].isascii()
        and text[20:23].isdigit()
    ):
        return _seconds_ms(text[:19]) + int(text[20:23])
    return _parse_general(text)


@lru_cache(maxsize=4096)
def _seconds_ms(text: str) -> int:
    return _parse_general(text + "Z")


def in_range(ms: int) -> bool:
    """An event time both RFC 3339 and a UUIDv7's 48-bit timestamp can carry."""
    return 0 <= ms <= MAX_MS


def _parse_general(text: str) -> int:
    match = _RFC3339.match(text)
    if match is None:
        raise InvalidTimestampError(f"not an RFC 3339 timestamp: {text[:64]!r}")
    frac = match.group(1)
    if frac is not None and len(frac) > 7:
        # fromisoformat takes at most microseconds; extra digits only refine below 1 ms.
        text = text[: match.start(1) + 7] + text[match.end(1) :]
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise InvalidTimestampError(f"not a valid date or time: {text[:64]!r}") from exc
    delta = parsed - _EPOCH
    return delta.days * _MS_PER_DAY + delta.seconds * 1000 + delta.microseconds // 1000


@lru_cache(maxsize=4096)
def _second_prefix(second: int) -> str:
    t = _EPOCH + timedelta(seconds=second)
    # strftime's %Y drops leading zeros of early years; RFC 3339 wants four digits.
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."


def format_ms(ms: int) -> str:
    """`2026-01-01T10:00:00.123Z` for epoch milliseconds (UTC)."""
    second, millis = divmod(ms, 1000)
    return f"{_second_prefix(second)}{millis:03d}Z"
