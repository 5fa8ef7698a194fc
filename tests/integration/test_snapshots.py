"""Restarting from local snapshots (`state_dir`) on a real broker.

A restarted replica loads its partitions' snapshots and replays only the changelog written
after them; a snapshot the changelog does not continue is thrown away. Either way the output
must be exactly what one replay of all input gives.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.records import InputRecord
from processor.state.model import State
from processor.state.packed import Profiles, pack
from processor.state.snapshot import Snapshots, Witness, value_digest
from tests.kafka_helpers import Broker, Record, consume_all, create_topics
from tests.processes import (
    ProcessorThread,
    Send,
    end_offsets,
    expected,
    processor_fields,
    read_input,
    send,
    wait_consumed,
)

UniqueName = Callable[[str], str]


def _records(count: int, seed: int, start_ms: int) -> list[Send]:
    gen = Generator(seed=seed, keys=80, mix=Mix(), start_ms=start_ms, step_ms=1)
    return [Send(r.key, r.value, r.timestamp_ms) for r in gen.records(count)]


def _now_ms() -> int:
    return int(time.time() * 1000) - 3_600_000  # within the topics' retention


def _run_to_end(settings: Settings, inputs: Sequence[InputRecord]) -> float:
    """Run until every input is committed, stop cleanly; return the records restored."""
    with ProcessorThread(settings) as proc:
        wait_consumed(
            settings.bootstrap_servers, settings.app_id, settings.input_topic, end_offsets(inputs)
        )
        restored = proc.processor.metrics.registry.get_sample_value(
            "tmf_events_restored_records_total"
        )
    assert proc.result == 0
    return restored or 0.0


def _events(settings: Settings) -> Counter[tuple[str, str, str]]:
    out: list[Record] = consume_all(
        settings.bootstrap_servers, [settings.service_topic, settings.resource_topic], timeout=60
    )

    def header(r: Record, name: str) -> str:
        value = r.header(name)
        assert value is not None, name
        return value.decode()

    return Counter(
        (header(r, "ce_id"), header(r, "ce_type"), header(r, "ce_entityversion")) for r in out
    )


def _expected(settings: Settings, inputs: Sequence[InputRecord]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (h["ce_id"], h["ce_type"], h["ce_entityversion"])
        for h in (m["headers"] for m in expected(inputs, settings))
    )


def test_a_restart_replays_only_what_came_after_the_snapshot(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    settings = Settings(**processor_fields(bootstrap, unique_name("snap")), state_dir=tmp_path)
    create_topics(bootstrap, {settings.input_topic: 2})
    start_ms = _now_ms()
    send(bootstrap, settings.input_topic, _records(600, 31, start_ms))
    first = read_input(bootstrap, settings.input_topic)
    assert _run_to_end(settings, first) == 0  # nothing to restore on the first start
    snaps = Snapshots(tmp_path, settings.changelog_topic, keep_events=False)
    assert snaps.path(0).is_file() and snaps.path(1).is_file()
    loaded = [snaps.load(p) for p in (0, 1)]
    assert all(s is not None and s.entries for s in loaded)

    send(bootstrap, settings.input_topic, _records(400, 32, start_ms + 1_000_000))
    inputs = read_input(bootstrap, settings.input_topic)
    # Only each partition's witness record is read again, not the 600 records' changelog.
    assert _run_to_end(settings, inputs) == 2
    assert _events(settings) == _expected(settings, inputs)


def _bogus_snapshot(settings: Settings, directory: Path, key: str, witness: Witness) -> None:
    """A snapshot claiming `key` is at version 99: using it would change every version."""
    state = State(
        entity_type="service",
        version=99,
        hash=b"\x01" * 16,
        attr_names="",
        attr_digests=b"",
        deleted=False,
        observed_at=0,
        offset=-1,
        href=f"/x/{key}",
        at_type="Service",
        last_event_id="019b76da-acce-72a6-acd5-56fb8554d420",
        last_event_type="ServiceCreateEvent",
        last_event_time="2026-01-01T00:00:00.000Z",
    )
    profiles = Profiles()
    Snapshots(directory, settings.changelog_topic, keep_events=False).save(
        0, witness.offset + 1, witness, {key: pack(key, state, profiles)}, profiles.export()
    )


@pytest.mark.parametrize("changelog", ["empty", "filled"])
def test_a_snapshot_the_changelog_does_not_continue_is_discarded(
    noida_broker: Broker,
    unique_name: UniqueName,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    changelog: str,
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("snap-bad"))
    settings = Settings(**fields, state_dir=tmp_path)
    create_topics(bootstrap, {settings.input_topic: 1})
    start_ms = _now_ms()
    send(bootstrap, settings.input_topic, _records(300, 41, start_ms))
    inputs = read_input(bootstrap, settings.input_topic)
    key = next(r.key for r in inputs if r.key).decode()
    if changelog == "filled":
        # Fill the changelog without snapshots, then plant one whose witness (offset 0) is
        # another key: reading from offset 0 must reveal the mismatch.
        _run_to_end(Settings(**fields), inputs)
        written = len(consume_all(bootstrap, [settings.changelog_topic], timeout=60))
        send(bootstrap, settings.input_topic, _records(200, 42, start_ms + 1_000_000))
        inputs = read_input(bootstrap, settings.input_topic)
    _bogus_snapshot(settings, tmp_path, key, Witness(0, "not-a-key", value_digest(b"x")))
    caplog.set_level(logging.WARNING, logger="processor.state.restore")
    restored = _run_to_end(settings, inputs)
    assert "does not match the changelog" in caplog.text
    if changelog == "filled":
        assert restored == written > 0, "not the whole changelog was restored"
    assert _events(settings) == _expected(settings, inputs)
