"""A compact in-memory form of a state record (no events), for the store at `history` 1.

The slim Avro record (~325 B) repeats per key what most keys share: the top-level attribute
names of the instance's shape, the href prefix before the id, the entity, `@type` and last
event type. Those go into one interned *profile* named by a 4-byte content hash; the href
keeps only whether it is `<prefix><key>`; the event id and time are packed to 16 bytes and
a varint (or nothing, when the time is the observedAt). What is left is ~70 B a key.

Every packed field round-trips exactly: whatever does not fit a packed form (an href that
does not end in the key, an upper-case UUID, a time not in the canonical form, a profile
whose hash collides) is kept inline.
"""

from __future__ import annotations

import hashlib
import threading

from processor.state import State, _long, _opt, _Reader, decode_state
from processor.timefmt import InvalidTimestampError, format_ms, parse_ms

MARK = 0x01  # first byte: a format version, and a check against being fed Avro

_DELETED = 0x01
_HREF_KEYED = 0x02  # href = profile's prefix + key
_ID_PACKED = 0x04  # last_event_id as 16 bytes
_TIME_OBSERVED = 0x08  # last_event_time = format_ms(observed_at)
_TIME_PACKED = 0x10  # last_event_time as epoch ms
_PROFILE_INLINE = 0x20

# entity type, attr names, @type, last event type, href prefix (None: href inline or absent)
Profile = tuple[str, str, str | None, str | None, str | None]

_MAX_PROFILES = 100_000


class Profiles:
    """Process-wide interned profiles, by a 4-byte hash of their content.

    Content-addressed ids need no coordination: a snapshot written by one process can be
    read by another, as long as its table merges without a conflicting id.
    """

    def __init__(self) -> None:
        self.by_id: dict[bytes, Profile] = {}
        self.ids: dict[Profile, bytes] = {}
        self.lock = threading.Lock()  # the API and tests may share the table across threads

    def intern(self, profile: Profile) -> bytes | None:
        found = self.ids.get(profile)
        if found is not None:
            return found
        pid = hashlib.blake2b(_profile_bytes(profile), digest_size=4).digest()
        with self.lock:
            held = self.by_id.get(pid)
            if held is None:
                if len(self.by_id) >= _MAX_PROFILES:
                    return None  # unbounded shapes: keep them inline
                self.by_id[pid] = profile
                self.ids[profile] = pid
                return pid
        return pid if held == profile else None

    def export(self) -> dict[bytes, Profile]:
        with self.lock:
            return dict(self.by_id)

    def merge(self, table: dict[bytes, Profile]) -> bool:
        """Adopt another process's table; False (nothing adopted) on a conflicting id."""
        with self.lock:
            for pid, profile in table.items():
                held = self.by_id.get(pid)
                if held is not None and held != profile:
                    return False
            for pid, profile in table.items():
                if pid not in self.by_id:
                    self.by_id[pid] = profile
                    self.ids[profile] = pid
        return True


PROFILES = Profiles()


def _profile_bytes(profile: Profile) -> bytes:
    return b"".join(_opt(part) for part in profile)


def pack(key: str, state: State) -> bytes:
    flags = _DELETED if state.deleted else 0
    href = state.href
    prefix: str | None = None
    if href is not None and key and href.endswith(key):
        prefix = href[: len(href) - len(key)]
        flags |= _HREF_KEYED
    profile = (state.entity_type, state.attr_names, state.at_type, state.last_event_type, prefix)
    pid = PROFILES.intern(profile)
    parts = [
        b"",  # flags, set below
        _long(state.version),
        _long(len(state.hash)),
        state.hash,
        _long(len(state.attr_digests)),
        state.attr_digests,
        _long(state.observed_at),
        _long(state.offset),
    ]
    if pid is None:
        flags |= _PROFILE_INLINE
        parts.append(_profile_bytes(profile))
    else:
        parts.append(pid)
    if not flags & _HREF_KEYED:
        parts.append(_opt(href))
    event_id = state.last_event_id
    raw = _uuid_bytes(event_id) if event_id is not None else None
    if raw is not None:
        flags |= _ID_PACKED
        parts.append(raw)
    else:
        parts.append(_opt(event_id))
    time = state.last_event_time
    if time is not None and time == _format_or_none(state.observed_at):
        flags |= _TIME_OBSERVED
    else:
        ms = _ms_or_none(time)
        if ms is not None:
            flags |= _TIME_PACKED
            parts.append(_long(ms))
        else:
            parts.append(_opt(time))
    parts[0] = bytes((MARK, flags))
    return b"".join(parts)


def pack_avro(key: str, data: bytes) -> bytes:
    """Pack a changelog value (its events, if any, are dropped)."""
    state = decode_state(data)
    state.events = ()
    return pack(key, state)


def unpack(key: str, data: bytes) -> State:
    try:
        if data[0] != MARK:
            raise ValueError("not a packed state record")
        flags = data[1]
        r = _Reader(data)
        r.pos = 2
        version = r.long()
        hash_ = r.bytes_()
        digests = r.bytes_()
        observed_at = r.long()
        offset = r.long()
        if flags & _PROFILE_INLINE:
            entity_type = r.opt()
            if entity_type is None:
                raise ValueError("inline profile without an entity type")
            attr_names = r.opt() or ""
            profile: Profile = (entity_type, attr_names, r.opt(), r.opt(), r.opt())
        else:
            pid = data[r.pos : r.pos + 4]
            r.pos += 4
            profile = PROFILES.by_id[pid]
        entity_type, attr_names, at_type, last_event_type, prefix = profile
        if flags & _HREF_KEYED:
            href: str | None = f"{prefix}{key}"
        else:
            href = r.opt()
        if flags & _ID_PACKED:
            h = data[r.pos : r.pos + 16].hex()
            r.pos += 16
            event_id: str | None = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            event_id = r.opt()
        if flags & _TIME_OBSERVED:
            time: str | None = format_ms(observed_at)
        elif flags & _TIME_PACKED:
            time = format_ms(r.long())
        else:
            time = r.opt()
    except (IndexError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt packed state record: {exc!r}") from exc
    return State(
        entity_type=entity_type,
        version=version,
        hash=hash_,
        attr_names=attr_names,
        attr_digests=digests,
        deleted=bool(flags & _DELETED),
        observed_at=observed_at,
        offset=offset,
        href=href,
        at_type=at_type,
        last_event_id=event_id,
        last_event_type=last_event_type,
        last_event_time=time,
    )


def _uuid_bytes(text: str) -> bytes | None:
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    try:
        raw = bytes.fromhex(text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])
    except ValueError:
        return None
    h = raw.hex()
    if text != f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}":
        return None  # upper case, or anything else that would not come back the same
    return raw


def _format_or_none(ms: int) -> str | None:
    try:
        return format_ms(ms)
    except (ValueError, OverflowError):
        return None


def _ms_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        ms = parse_ms(text)
    except (InvalidTimestampError, ValueError, OverflowError):
        return None
    return ms if _format_or_none(ms) == text else None
