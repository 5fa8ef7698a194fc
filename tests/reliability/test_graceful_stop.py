"""Graceful stop under load: SIGTERM finishes the open batch, commits, leaves the group and
exits 0; the replica started again continues where it stopped. On noida-db (real
transactions) the output is exact: 0 lost, 0 divergent, 0 copies (docs/runtime.md#exactly-once).

Short profile: 2 stops; long: 8 stops. The stop moments are seeded random points of the
group's committed progress, like the kill moments of the crash test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from random import Random

from processor.config import Settings
from tests.kafka_helpers import Broker, create_topics
from tests.loads import PacedProducer, synthetic
from tests.processes import ProcessorProcess, processor_fields
from tests.reliability import harness

UniqueName = Callable[[str], str]

PARTITIONS = 6
SEED = 642


def test_sigterm_under_load_exits_0_and_loses_nothing(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    name = unique_name("rel-term")
    stops = harness.pick(2, 8)
    rate = 300
    records = harness.pick(4_000, 30_000)
    # With snapshots: every restart after a stop loads them and replays only the changelog
    # after them, and must still lose nothing and copy nothing.
    fields = processor_fields(
        bootstrap, name, instance_id="term-0", state_dir=str(tmp_path / "state")
    )
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: PARTITIONS})
    rng = Random(SEED)
    slices = [0.85 * records * i / (stops + 1) for i in range(1, stops + 2)]
    targets = [int(rng.uniform(lo, hi)) for lo, hi in itertools.pairwise(slices)]
    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    load = PacedProducer(bootstrap, settings.input_topic, synthetic(SEED, records, 2_000), rate)
    stopped_at: list[str] = []
    with harness.closing(proc):
        proc.start()
        proc.wait_ready(120)
        load.start()
        try:
            for target in targets:
                harness.wait_progress(
                    bootstrap, name, settings.input_topic, PARTITIONS, target, 300, [proc]
                )
                code = proc.terminate(120)
                assert code == 0, f"SIGTERM under load: exit {code}\n{proc.log()[-4000:]}"
                after = harness.committed_total(bootstrap, name, settings.input_topic, PARTITIONS)
                stopped_at.append(f"{target}->{after}")
                proc.start()
                proc.wait_ready(180)
            sent = load.wait(600)
        finally:
            load.stop()
        inputs = harness.drain(bootstrap, settings, sent, timeout=600, alive=[proc])
        assert proc.terminate(120) == 0, proc.log()[-4000:]
    log = proc.log()
    title = f"SIGTERM x{stops} under load on {noida_broker.kind}"
    notes = [
        f"stopped at committed (target->after exit) {stopped_at}",
        f"'stopped cleanly' logged {log.count('stopped cleanly')} times",
    ]
    report, _, _ = harness.history(bootstrap, settings, inputs, title, notes=notes)
    report.assert_exact(allow_copies=False)
    assert log.count("stopped cleanly") == stops + 1, log[-4000:]
    assert log.count("loaded; replaying") >= stops, "no restart started from its snapshots"
    harness.assert_no_traceback(proc)
