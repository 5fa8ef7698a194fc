"""Local state snapshots: what is written is what is read, and every doubt reads as None."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from processor.state import snapshot
from processor.state.snapshot import Snapshots, Witness, value_digest

ENTRIES = {"svc-1": b"\x00state-1", "svc-2": b"\x00state-2" * 40}
PROFILES = {b"\x01\x02\x03\x04": ("service", "name\x00state", "Service", None, "/x/")}
WITNESS = Witness(41, "svc-2", value_digest(b"changelog value"))


def _saved(tmp_path: Path, keep_events: bool = False) -> Snapshots:
    snaps = Snapshots(tmp_path, "app-state-changelog", keep_events)
    snaps.save(3, 42, WITNESS, ENTRIES, PROFILES)
    return snaps


def test_a_saved_snapshot_loads_back(tmp_path: Path) -> None:
    snaps = _saved(tmp_path)
    snap = snaps.load(3)
    assert snap is not None
    assert (snap.offset, snap.witness, snap.entries) == (42, WITNESS, ENTRIES)
    assert snap.profiles == PROFILES
    assert [p.name for p in snaps.directory.iterdir()] == ["partition-3.snapshot"]


def test_a_missing_snapshot_is_none(tmp_path: Path) -> None:
    assert _saved(tmp_path).load(4) is None


def test_a_snapshot_written_for_other_settings_is_ignored(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    data = saved.path(3).read_bytes()
    assert Snapshots(tmp_path, "app-state-changelog", keep_events=True).load(3) is None
    moved = Snapshots(tmp_path, "other-changelog", keep_events=False)
    moved.directory.mkdir(parents=True)
    moved.path(3).write_bytes(data)
    assert moved.load(3) is None
    saved.path(5).write_bytes(data)  # another partition's name
    assert saved.load(5) is None


def test_a_snapshot_of_another_python_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "_PYTHON", "2.7")
    snaps = _saved(tmp_path)
    monkeypatch.undo()
    assert snaps.load(3) is None


def _corrupt(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_or_truncated_snapshots_are_unusable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snaps = _saved(tmp_path)
    path = snaps.path(3)
    whole = path.read_bytes()
    caplog.set_level(logging.WARNING)
    _corrupt(path, len(whole) - 3)  # in the body: the CRC catches it
    assert snaps.load(3) is None
    assert "CRC" in caplog.text
    path.write_bytes(whole[: len(whole) // 2])
    assert snaps.load(3) is None
    path.write_bytes(b"something else entirely")
    assert snaps.load(3) is None
    path.write_bytes(b"")
    assert snaps.load(3) is None


def test_the_header_says_what_the_snapshot_covers(tmp_path: Path) -> None:
    raw = _saved(tmp_path).path(3).read_bytes()
    size = int.from_bytes(raw[8:12], "big")
    header = json.loads(raw[12 : 12 + size])
    assert header["offset"] == 42
    assert header["keys"] == len(ENTRIES)
    assert header["witness"] == [41, "svc-2", WITNESS.digest]


def test_the_witness_matches_only_its_own_record() -> None:
    assert WITNESS.matches(41, "svc-2", b"changelog value")
    assert not WITNESS.matches(40, "svc-2", b"changelog value")
    assert not WITNESS.matches(41, "svc-3", b"changelog value")
    assert not WITNESS.matches(41, "svc-2", b"another value")
    assert Witness(0, "k", value_digest(None)).matches(0, "k", None)
