"""Per-instance last-event state (DESIGN §6), its Avro changelog encoding, the in-memory store.

The changelog value is Avro binary of `schemas/state-record.avsc`. It is written once per
changed key per batch and read once per restored key that sees traffic, so it has its own
encoder and decoder for this one schema (fastavro costs ~40 µs a call here; these a few µs);
tests check both directions byte for byte against fastavro.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_SMALL = [bytes([n]) for n in range(128)]


class StoredEvent:
    """One emitted event as the domain API serves it.

    Its structured-mode CloudEvent JSON is built on first use from the produced headers and
    value: only a key's newest state per batch is ever encoded, so most events never need it.
    """

    __slots__ = ("_cloudevent", "_parts", "id", "time", "topic", "type")

    def __init__(
        self,
        id: str,
        type: str,
        time: str,
        topic: str,
        cloudevent: str | bytes | None = None,
        parts: tuple[list[tuple[str, bytes | None]], bytes] | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.time = time
        self.topic = topic
        self._cloudevent = cloudevent.encode() if isinstance(cloudevent, str) else cloudevent
        self._parts = parts

    @property
    def cloudevent_bytes(self) -> bytes:
        if self._cloudevent is None:
            assert self._parts is not None
            self._cloudevent = structured_cloudevent(*self._parts)
            self._parts = None
        return self._cloudevent

    def value_bytes(self) -> bytes:
        """The event's own JSON (the `data`), or its whole stored form once built."""
        if self._parts is not None:
            return self._parts[1]
        assert self._cloudevent is not None
        return self._cloudevent

    def size_hint(self) -> int:
        """Bytes this event takes in a state record (an upper bound before it is built)."""
        if self._cloudevent is not None:
            return len(self._cloudevent) + 200
        assert self._parts is not None
        headers, value = self._parts
        return len(value) + sum(len(k) + len(v or b"") + 6 for k, v in headers) + 200

    @property
    def cloudevent(self) -> str:
        return self.cloudevent_bytes.decode()

    def _key(self) -> tuple[str, str, str, str, bytes]:
        return (self.id, self.type, self.time, self.topic, self.cloudevent_bytes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredEvent) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"StoredEvent(id={self.id!r}, type={self.type!r}, time={self.time!r})"


class _AttributeNames(dict[str, str | None]):
    """Header name -> structured-mode attribute name (None: not a CloudEvents attribute)."""

    def __missing__(self, header: str) -> str | None:
        name = header[3:] if header.startswith("ce_") else None
        if header == "content-type":
            name = "datacontenttype"
        if len(self) < 1024:
            self[header] = name
        return name


_ATTRIBUTE = _AttributeNames()


def structured_cloudevent(headers: list[tuple[str, bytes | None]], value: bytes) -> bytes:
    """A binary-mode event (headers + value) as a structured-mode CloudEvent (JSON)."""
    attrs: dict[str, str] = {}
    names = _ATTRIBUTE
    for header, raw in headers:
        name = names[header]
        if name is not None:
            attrs[name] = "" if raw is None else raw.decode("utf-8", "replace")
    return b"".join((orjson.dumps(attrs)[:-1], b',"data":', value, b"}"))


@dataclass(slots=True)
class State:
    entity_type: str
    version: int
    hash: bytes
    attr_names: str  # NUL-separated top-level public attribute names
    attr_digests: bytes  # 8 bytes per name
    deleted: bool
    observed_at: int
    offset: int
    href: str | None
    at_type: str | None
    last_event_id: str | None
    last_event_type: str | None
    last_event_time: str | None
    events: tuple[StoredEvent, ...] = field(default=())


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


def _opt(s: str | None) -> bytes:
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
        _opt(state.href),
        _shared_opt(state.at_type),
        _opt(state.last_event_id),
        _shared_opt(state.last_event_type),
        _opt(state.last_event_time),
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


class _Reader:
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


def _read_events(r: _Reader, keep: bool) -> tuple[StoredEvent, ...]:
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


def _read_fields(r: _Reader) -> StateFields:
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
    try:
        r = _Reader(data)
        events = _read_events(r, keep=True)
        return State(*_read_fields(r), events=events)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt state record: {exc}") from exc


def decode_fields(data: bytes) -> StateFields:
    """The fields of a whole record, its events skipped, without building a State."""
    try:
        r = _Reader(data)
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
    r = _Reader(data)
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
