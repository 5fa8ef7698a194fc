"""The changelog value: a `State` as Avro binary of `schemas/state-record.avsc`.

It is written once per changed key per batch and read once per restored key that sees
traffic, so it has its own encoder and decoder for this one schema (fastavro costs ~40 µs a
call here; these a few µs); tests check both directions byte for byte against fastavro.
"""

from __future__ import annotations

from typing import Any

from processor.state.model import State, StoredEvent

_SMALL = [bytes([n]) for n in range(128)]


# -- encoding ---------------------------------------------------------------------------------


def _long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _SMALL[z]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _bytes(b: bytes) -> bytes:
    n = len(b)
    return (_SMALL[n << 1] if n < 64 else _long(n)) + b


def _str(s: str) -> bytes:
    return _bytes(s.encode())


def opt(s: str | None) -> bytes:
    """An optional string as Avro writes a `["null", "string"]` union."""
    return b"\x00" if s is None else b"\x02" + _str(s)


# Encodings of the strings most states share (entity and event types, @type, the attribute
# names of an instance shape, topics): encoding a state is on every commit's path.
_SHARED_STR: dict[str, bytes] = {}
_SHARED_MAX = 4096


def _shared_str(s: str) -> bytes:
    out = _SHARED_STR.get(s)
    if out is None:
        out = _str(s)
        if len(_SHARED_STR) < _SHARED_MAX:
            _SHARED_STR[s] = out
    return out


def _shared_opt(s: str | None) -> bytes:
    return b"\x00" if s is None else b"\x02" + _shared_str(s)


def encode_state(state: State) -> bytes:
    """The changelog value of a state (its events first, as one sized block)."""
    parts: list[bytes] = []
    if state.events:
        block: list[bytes] = []
        for e in state.events:
            block += (
                _str(e.id),
                _shared_str(e.type),
                _str(e.time),
                _shared_str(e.topic),
                _bytes(e.cloudevent_bytes),
            )
        items = b"".join(block)
        # A negative count announces the block's byte size (Avro spec): skippable in one step.
        parts += (_long(-len(state.events)), _long(len(items)), items)
    parts += (
        b"\x00",
        _shared_str(state.entity_type),
        _long(state.version),
        _bytes(state.hash),
        _shared_str(state.attr_names),
        _bytes(state.attr_digests),
        b"\x01" if state.deleted else b"\x00",
        _long(state.observed_at),
        _long(state.offset),
        opt(state.href),
        _shared_opt(state.at_type),
        opt(state.last_event_id),
        _shared_opt(state.last_event_type),
        opt(state.last_event_time),
    )
    return b"".join(parts)


# -- decoding ---------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """An Avro long (zig-zag varint) at `pos`, and the position after it."""
    b = data[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    z = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


class Reader:
    """Reads Avro primitives from `data`, advancing `pos`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def long(self) -> int:
        value, self.pos = _varint(self.data, self.pos)
        return value

    def bytes_(self) -> bytes:
        n = self.long()
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.data):
            raise ValueError("truncated state record")
        self.pos = end
        return self.data[start:end]

    def str_(self) -> str:
        return self.bytes_().decode()

    def opt(self) -> str | None:
        branch = self.long()
        if branch == 0:
            return None
        if branch != 1:
            raise ValueError("bad union branch in state record")
        return self.str_()

    def boolean(self) -> bool:
        b = self.data[self.pos]
        self.pos += 1
        if b > 1:
            raise ValueError("bad boolean in state record")
        return b == 1


# The record's fields after the events, in `State`'s field order.
StateFields = tuple[
    str,
    int,
    bytes,
    str,
    bytes,
    bool,
    int,
    int,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]


def _read_events(r: Reader, keep: bool) -> tuple[StoredEvent, ...]:
    events: list[StoredEvent] = []
    count = r.long()
    while count != 0:
        if count < 0:
            count = -count
            size = r.long()  # the block's byte size
            if not keep:
                r.pos += size
                count = r.long()
                continue
        for _ in range(count):
            event = StoredEvent(r.str_(), r.str_(), r.str_(), r.str_(), r.bytes_())
            if keep:
                events.append(event)
        count = r.long()
    return tuple(events)


def _read_fields(r: Reader) -> StateFields:
    """The fields after the events; read inline (this runs for every restored record)."""
    data = r.data
    read = _varint
    n, pos = read(data, r.pos)
    negative = n < 0  # a length; every one is checked below, at no cost per field
    entity_type = data[pos : pos + n].decode()
    pos += n
    version, pos = read(data, pos)
    n, pos = read(data, pos)
    negative |= n < 0
    hash_ = data[pos : pos + n]
    pos += n
    n, pos = read(data, pos)
    negative |= n < 0
    attr_names = data[pos : pos + n].decode()
    pos += n
    n, pos = read(data, pos)
    negative |= n < 0
    digests = data[pos : pos + n]
    pos += n
    deleted = data[pos]
    if deleted > 1:
        raise ValueError("bad boolean in state record")
    observed_at, pos = read(data, pos + 1)
    offset, pos = read(data, pos)
    opts: list[str | None] = []
    for _ in range(5):
        branch = data[pos]
        pos += 1
        if branch == 0:
            opts.append(None)
        elif branch == 2:
            n, pos = read(data, pos)
            negative |= n < 0
            opts.append(data[pos : pos + n].decode())
            pos += n
        else:
            raise ValueError("bad union branch in state record")
    if negative or pos > len(data):
        raise ValueError("truncated state record")
    r.pos = pos
    href, at_type, event_id, event_type, time = opts
    return (
        entity_type,
        version,
        hash_,
        attr_names,
        digests,
        deleted == 1,
        observed_at,
        offset,
        href,
        at_type,
        event_id,
        event_type,
        time,
    )


def decode_state(data: bytes) -> State:
    """A changelog value back as a State (ValueError when it is not one)."""
    try:
        r = Reader(data)
        events = _read_events(r, keep=True)
        return State(*_read_fields(r), events=events)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt state record: {exc}") from exc


def decode_fields(data: bytes) -> StateFields:
    """The fields of a whole record, its events skipped, without building a State."""
    try:
        r = Reader(data)
        _read_events(r, keep=False)
        fields = _read_fields(r)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt state record: {exc}") from exc
    if r.pos != len(data):
        raise ValueError("corrupt state record: its length does not match its fields")
    return fields


def without_events(data: bytes) -> bytes:
    """The same record with an empty event list: what the processor keeps in memory when it
    keeps no history (events are only ever written, never read back, at history 1)."""
    r = Reader(data)
    try:
        count = r.long()
        if count == 0:
            return data
        if count < 0:
            size = r.long()
            r.pos += size
            if r.long() == 0 and r.pos <= len(data):
                return b"\x00" + data[r.pos :]
    except IndexError as exc:
        raise ValueError(f"corrupt state record: {exc}") from exc
    # Blocks without byte sizes (other writers): decode and write again.
    state = decode_state(data)
    state.events = ()
    return encode_state(state)


def to_avro_dict(state: State) -> dict[str, Any]:
    """The record as fastavro and JSON consumers see it."""
    return {
        "entityType": state.entity_type,
        "version": state.version,
        "hash": state.hash,
        "attrNames": state.attr_names,
        "attrDigests": state.attr_digests,
        "deleted": state.deleted,
        "observedAt": state.observed_at,
        "offset": state.offset,
        "href": state.href,
        "atType": state.at_type,
        "lastEventId": state.last_event_id,
        "lastEventType": state.last_event_type,
        "lastEventTime": state.last_event_time,
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "time": e.time,
                "topic": e.topic,
                "cloudevent": e.cloudevent,
            }
            for e in state.events
        ],
    }
