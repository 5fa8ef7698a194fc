"""The packed form of a state (no events): how the store keeps it at `history` 1.

The changelog value without its events (~325 B for a typical instance) repeats per key what
most keys share: the top-level attribute names of the instance's shape, the href prefix
before the id, the entity, `@type` and last event type. Those go into one interned *profile*
named by a 4-byte content hash; the href keeps only whether it is `<prefix><key>`; the event
id is packed to 16 bytes and the time to 8 (or nothing, when it is the observedAt). What is
left is ~90 B a key for an instance of ~10 top-level members (the header, the 16-byte hash,
4 bytes per member, the profile id and the event id).

Every packed field round-trips exactly: whatever does not fit a packed form (an href that
does not end in the key, an upper-case UUID, a time not in the canonical form, a profile
whose hash collides) is kept inline.
"""

from __future__ import annotations

import hashlib
import struct
import threading

from processor.state.codec import (
    Reader,
    StateFields,
    decode_fields,
    decode_state,
    encode_state,
    opt,
)
from processor.state.model import State
from processor.timefmt import InvalidTimestampError, format_ms, parse_ms

MARK = 0x01  # first byte: a format version, and a check against being fed Avro

_DELETED = 0x01
_HREF_KEYED = 0x02  # href = profile's prefix + key
_ID_PACKED = 0x04  # last_event_id as 16 bytes
_TIME_OBSERVED = 0x08  # last_event_time = format_ms(observed_at)
_TIME_PACKED = 0x10  # last_event_time as epoch ms
_PROFILE_INLINE = 0x20
_AVRO = 0x40  # alone: the rest is the slim Avro record (what the fixed header cannot hold)

# entity type, attr names, @type, last event type, href prefix (None: href inline or absent)
Profile = tuple[str, str, str | None, str | None, str | None]

_MAX_PROFILES = 100_000


class Profiles:
    """A store's interned profiles, by a 4-byte hash of their content.

    Content-addressed ids need no coordination: a snapshot written by one process can be
    read by another, as long as its table merges without a conflicting id.
    """

    def __init__(self) -> None:
        self.by_id: dict[bytes, Profile] = {}
        self.ids: dict[Profile, bytes] = {}
        self.lock = threading.Lock()  # snapshots export it while the loop interns

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


def _profile_bytes(profile: Profile) -> bytes:
    return b"".join(opt(part) for part in profile)


_HEAD = struct.Struct("<BBqqqBH")  # mark, flags, version, observed_at, offset, hash/digest sizes
_TIME = struct.Struct("<q")

#: The layout as the C path reads and writes it too (processor/native/contract.h): a test
#: holds the two to each other.
LAYOUT = {
    "head": _HEAD.format,
    "head_size": _HEAD.size,
    "mark": MARK,
    "deleted": _DELETED,
    "href_keyed": _HREF_KEYED,
    "id_packed": _ID_PACKED,
    "time_observed": _TIME_OBSERVED,
    "time_packed": _TIME_PACKED,
    "profile_inline": _PROFILE_INLINE,
    "avro": _AVRO,
}


def pack(key: str, state: State, profiles: Profiles) -> bytes:
    return _pack(
        key,
        (
            state.entity_type,
            state.version,
            state.hash,
            state.attr_names,
            state.attr_digests,
            state.deleted,
            state.observed_at,
            state.offset,
            state.href,
            state.at_type,
            state.last_event_id,
            state.last_event_type,
            state.last_event_time,
        ),
        profiles,
    )


def _pack(key: str, fields: StateFields, profiles: Profiles) -> bytes:
    (
        entity_type,
        version,
        hash_,
        attr_names,
        digests,
        deleted,
        observed_at,
        offset,
        href,
        at_type,
        event_id,
        event_type,
        time,
    ) = fields
    flags = _DELETED if deleted else 0
    prefix: str | None = None
    if href is not None and key and href.endswith(key):
        prefix = href[: len(href) - len(key)]
        flags |= _HREF_KEYED
    profile = (entity_type, attr_names, at_type, event_type, prefix)
    pid = profiles.intern(profile)
    tail: list[bytes] = []
    if pid is None:
        flags |= _PROFILE_INLINE
        tail.append(_profile_bytes(profile))
    else:
        tail.append(pid)
    if not flags & _HREF_KEYED:
        tail.append(opt(href))
    raw = _uuid_bytes(event_id) if event_id is not None else None
    if raw is not None:
        flags |= _ID_PACKED
        tail.append(raw)
    else:
        tail.append(opt(event_id))
    if time is not None and time == _format_or_none(observed_at):
        flags |= _TIME_OBSERVED
    else:
        ms = _ms_or_none(time)
        if ms is not None:
            flags |= _TIME_PACKED
            tail.append(_TIME.pack(ms))
        else:
            tail.append(opt(time))
    try:
        head = _HEAD.pack(MARK, flags, version, observed_at, offset, len(hash_), len(digests))
    except struct.error:  # sizes or numbers beyond the fixed header: the Avro form
        return bytes((MARK, _AVRO)) + encode_state(State(*fields))  # no events: slim
    return b"".join((head, hash_, digests, *tail))


def pack_changelog(key: str, data: bytes, profiles: Profiles) -> bytes:
    """Pack a changelog value (its events, if any, are dropped) without building a State."""
    return _pack(key, decode_fields(data), profiles)


def unpack(key: str, data: bytes, profiles: Profiles) -> State:
    try:
        mark, flags, version, observed_at, offset, hash_len, digests_len = _HEAD.unpack_from(data)
    except struct.error:
        if data[:2] == bytes((MARK, _AVRO)):
            return decode_state(data[2:])
        raise ValueError("corrupt packed state record: too short") from None
    if mark != MARK:
        raise ValueError("not a packed state record")
    if flags == _AVRO:
        return decode_state(data[2:])
    try:
        pos = _HEAD.size
        hash_ = data[pos : pos + hash_len]
        pos += hash_len
        digests = data[pos : pos + digests_len]
        pos += digests_len
        if len(digests) != digests_len:
            raise IndexError("truncated")
        r = Reader(data)
        if flags & _PROFILE_INLINE:
            r.pos = pos
            entity_type = r.opt()
            if entity_type is None:
                raise ValueError("inline profile without an entity type")
            attr_names = r.opt() or ""
            profile: Profile = (entity_type, attr_names, r.opt(), r.opt(), r.opt())
            pos = r.pos
        else:
            profile = profiles.by_id[data[pos : pos + 4]]
            pos += 4
        entity_type, attr_names, at_type, last_event_type, prefix = profile
        if flags & _HREF_KEYED:
            href: str | None = f"{prefix}{key}"
        else:
            r.pos = pos
            href = r.opt()
            pos = r.pos
        if flags & _ID_PACKED:
            h = data[pos : pos + 16].hex()
            if len(h) != 32:
                raise IndexError("truncated")
            pos += 16
            event_id: str | None = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            r.pos = pos
            event_id = r.opt()
            pos = r.pos
        if flags & _TIME_OBSERVED:
            time: str | None = format_ms(observed_at)
        elif flags & _TIME_PACKED:
            (ms,) = _TIME.unpack_from(data, pos)
            time = format_ms(ms)
        else:
            r.pos = pos
            time = r.opt()
    except (IndexError, KeyError, UnicodeDecodeError, OverflowError, struct.error) as exc:
        # OverflowError: a time no state of ours holds (format_ms past year 9999)
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
