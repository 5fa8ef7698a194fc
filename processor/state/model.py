"""What the processor remembers per instance: its state and its last events.

`State` is one key's last-event state: enough to decide the next record's events (the hash
of its public rendering, a digest per top-level attribute for change classification and
delta payloads, its version, input offset and last event) without keeping the instance.
`StoredEvent` is one emitted event as the query API serves it. Their durable form is the
changelog value (processor/state/codec.py); the in-memory form at `history` 1 is packed
(processor/state/packed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson


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
    """One key's last-event state: what deciding the key's next record needs."""

    entity_type: str
    version: int
    hash: bytes
    attr_names: str  # NUL-separated top-level public attribute names
    attr_digests: bytes  # a big-endian CRC-32 (4 bytes) per name, in the order of attr_names
    deleted: bool
    observed_at: int
    offset: int
    href: str | None
    at_type: str | None
    last_event_id: str | None
    last_event_type: str | None
    last_event_time: str | None
    events: tuple[StoredEvent, ...] = field(default=())
