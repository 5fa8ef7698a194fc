"""Local snapshots of a partition's state, so a restarted replica need not replay it all.

A snapshot holds a partition's encoded state records and the changelog offset it covers:
restoring loads it and replays only the changelog from there. It is an optimisation the
changelog can always stand in for, so every doubt means "restore from the beginning".

Why it is safe: the store only ever holds committed state, and replaying changelog records
over newer state of the same keys ends at the newest value of every key. A snapshot may be
stale (written by this replica before another one owned the partition for a while) and
still be right after replaying from its offset.

What the offset alone cannot tell: whether the changelog is still the topic the snapshot
came from (deleted and created again, offsets start over). So each snapshot names a witness,
the last committed data record below its offset, and restoring starts at the witness: the
first record read must be it (same offset, key and value digest), or the snapshot is
discarded. Compaction that removed the witness also discards it, which costs only time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
import mmap
import os
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MAGIC = b"TMFSNAP1"
_HEADER_LEN = struct.Struct(">I")
# marshal is fast (1M records load in about a second) but its format belongs to one
# Python version: a snapshot from another version is ignored.
_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def value_digest(value: bytes | None) -> str:
    """What a witness remembers of a changelog value."""
    return hashlib.blake2b(value or b"", digest_size=16).hexdigest()


@dataclass(frozen=True)
class Witness:
    """A changelog record the snapshot's partition must still hold where it was."""

    offset: int
    key: str
    digest: str

    def matches(self, offset: int, key: str, value: bytes | None) -> bool:
        return offset == self.offset and key == self.key and value_digest(value) == self.digest


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot: a partition's entries and what proves them current."""

    offset: int  # the changelog offset the entries cover (everything below it)
    witness: Witness
    entries: dict[str, bytes]  # in the store's form
    profiles: dict[bytes, Any]  # the profiles packed entries name (processor/state/packed.py)


class Snapshots:
    """The snapshot files of one changelog topic under `directory`."""

    def __init__(self, directory: Path, topic: str, keep_events: bool) -> None:
        self.directory = directory / topic
        self.topic = topic
        self.keep_events = keep_events

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition}.snapshot"

    def save(
        self,
        partition: int,
        offset: int,
        witness: Witness,
        entries: dict[str, bytes],
        profiles: dict[bytes, Any],
    ) -> int:
        """Write atomically (temporary file, fsync, rename); return the bytes written."""
        body = marshal.dumps((profiles, entries))
        header = json.dumps(
            {
                "python": _PYTHON,
                "topic": self.topic,
                "partition": partition,
                "offset": offset,
                "witness": [witness.offset, witness.key, witness.digest],
                "keep_events": self.keep_events,
                "keys": len(entries),
                "body_bytes": len(body),
                "crc32": zlib.crc32(body),
            }
        ).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".partition-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_MAGIC + _HEADER_LEN.pack(len(header)) + header)
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path(partition))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(body) + len(header) + len(_MAGIC) + _HEADER_LEN.size

    def load(self, partition: int) -> Snapshot | None:
        """The partition's snapshot, or None (and a log line saying why) when unusable."""
        path = self.path(partition)
        try:
            with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return self._parse(partition, m)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, TypeError, KeyError) as exc:
            log.warning("snapshot %s is unusable (%s); restoring from the changelog", path, exc)
            return None

    def _parse(self, partition: int, data: mmap.mmap) -> Snapshot | None:
        view = memoryview(data)
        try:
            if bytes(view[: len(_MAGIC)]) != _MAGIC:
                raise ValueError("not a snapshot file")
            at = len(_MAGIC)
            (size,) = _HEADER_LEN.unpack(view[at : at + _HEADER_LEN.size])
            at += _HEADER_LEN.size
            header: dict[str, Any] = json.loads(bytes(view[at : at + size]))
            at += size
            expected = {
                "python": _PYTHON,
                "topic": self.topic,
                "partition": partition,
                "keep_events": self.keep_events,
            }
            for name, value in expected.items():
                if header.get(name) != value:
                    log.info(
                        "snapshot of partition %d was written with %s=%r, not %r; ignored",
                        partition,
                        name,
                        header.get(name),
                        value,
                    )
                    return None
            with view[at:] as body:
                if len(body) != header["body_bytes"] or zlib.crc32(body) != header["crc32"]:
                    raise ValueError("truncated or corrupt (length or CRC mismatch)")
                profiles, entries = marshal.loads(body)
            if not isinstance(entries, dict) or len(entries) != header["keys"]:
                raise ValueError("entries do not match the header")
            if not isinstance(profiles, dict):
                raise ValueError("no profile table")
            w_offset, w_key, w_digest = header["witness"]
            witness = Witness(int(w_offset), w_key, w_digest)
            return Snapshot(int(header["offset"]), witness, entries, profiles)
        finally:
            view.release()


def check_state_dir(path: Path) -> None:
    """Fail at start, not at the first rebalance, when `state_dir` cannot hold snapshots."""
    from processor.producer import FatalError

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise FatalError(f"state_dir {path} is not a writable directory: {exc}") from exc
