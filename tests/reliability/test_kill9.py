"""kill -9 of `tmf-events run` at seeded random moments of a load over many keys, restarted with the
same instance id, again and again (docs/runtime.md#exactly-once, docs/testing.md#brokers-for-tests).

After the last restart the group must commit the whole input, and the read_committed output
must hold every input record's events and dead letters (0 lost), never two different events
for one (subject, entityversion, eventType) (0 divergent) and, on brokers with real
transactions (noida-db, Apache Kafka), every event exactly once (0 copies). On Tansu, whose
read_committed shows aborted and zombie records, copies are counted and reported, not failed.

Profiles: short (CI) 3 kills over 5k records on noida and 2 kills over 2k records on Tansu
(each Tansu restart waits out a rebalance timeout); long 20 kills over 100k records on both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from random import Random

import pytest

from processor.config import Settings
from tests.kafka_helpers import Broker, create_topics
from tests.loads import PacedProducer, synthetic
from tests.processes import ProcessorProcess, processor_fields
from tests.reliability import harness

UniqueName = Callable[[str], str]

PARTITIONS = 6
SEED = 638


def _crash_cycles(
    broker: Broker, name: str, tmp_path: Path, *, records: int, kills: int, keys: int, rate: float
) -> None:
    bootstrap = broker.bootstrap_servers
    fields = processor_fields(bootstrap, name, instance_id="crash-0")
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: PARTITIONS})
    rng = Random(SEED)
    # Kill moments: a seeded random point in each of `kills` equal slices of the first 85 % of
    # the input, as the group's committed progress: every incarnation gets work done on any
    # machine, and the last kill still lands while records keep arriving.
    slices = [0.85 * records * i / (kills + 1) for i in range(1, kills + 2)]
    targets = [int(rng.uniform(lo, hi)) for lo, hi in itertools.pairwise(slices)]
    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    killed_at: list[int] = []
    load = PacedProducer(bootstrap, settings.input_topic, synthetic(SEED, records, keys), rate)
    with harness.closing(proc):
        proc.start()
        proc.wait_ready(120)
        load.start()
        try:
            for target in targets:
                done = harness.wait_progress(
                    bootstrap, name, settings.input_topic, PARTITIONS, target, 300, [proc]
                )
                assert proc.kill() == -9
                killed_at.append(done)
                proc.start()
                proc.wait_ready(180)
            sent = load.wait(600)
        finally:
            load.stop()
        inputs = harness.drain(bootstrap, settings, sent, timeout=600)
        assert proc.terminate(120) == 0, proc.log()[-4000:]
    title = f"kill -9 x{kills} on {broker.kind}"
    notes = [f"killed at committed {killed_at}", f"{keys} keys, {PARTITIONS} partitions"]
    report, _, _ = harness.history(bootstrap, settings, inputs, title, notes=notes)
    report.assert_exact(allow_copies=not broker.hides_aborted_transactions)
    assert report.expected_events > 0
    harness.assert_no_traceback(proc)


def test_kill9_during_load_exactly_once_noida(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    _crash_cycles(
        noida_broker,
        unique_name("rel-kill9"),
        tmp_path,
        records=harness.pick(5_000, 100_000),
        kills=harness.pick(3, 20),
        keys=harness.pick(2_000, 20_000),
        rate=harness.pick(400, 800),
    )


def test_kill9_during_load_no_loss_tansu(
    tansu_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    if tansu_broker.kind != "tansu":
        pytest.skip("the external broker runs the noida variant")
    _crash_cycles(
        tansu_broker,
        unique_name("rel-kill9"),
        tmp_path,
        records=harness.pick(2_000, 100_000),
        kills=harness.pick(2, 20),
        keys=harness.pick(500, 20_000),
        rate=harness.pick(80, 500),
    )
