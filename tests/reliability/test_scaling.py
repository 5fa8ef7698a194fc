"""Scaling under load: 1 → 3 → 1 replicas (same app id, distinct instance ids, 6-partition
input) while records keep arriving; 0 lost, 0 divergent (docs/runtime.md#exactly-once).

Runs on Tansu, which gets consumer-group lifecycles right (docs/testing.md#brokers-for-tests);
replicas leave with SIGTERM (graceful: finish the batch, commit, leave the group). On Tansu the
replicas are dynamic group members (`static_membership=False`): with static members and
cooperative-sticky, Tansu 0.6.0 never hands the partitions the first replica revokes to the new ones
(reproduced with plain confluent-kafka consumers). Tansu's read_committed shows aborted records, so
copies are counted and reported, not failed; on an external Kafka (KAFKA_BOOTSTRAP_SERVERS) there
must be none.

Short profile: one 1 → 3 → 1 round; long: three rounds under a longer load.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from processor.config import Settings
from tests.kafka_helpers import Broker, create_topics, wait_until
from tests.loads import PacedProducer, synthetic
from tests.processes import ProcessorProcess, processor_fields
from tests.reliability import harness

UniqueName = Callable[[str], str]

PARTITIONS = 6
SEED = 641


def _assigned(proc: ProcessorProcess) -> list[int]:
    """The partitions a replica reports on /readyz ("assigned partitions [..]")."""
    answer = proc.readyz()
    if answer is None or answer[0] != 200:
        return []
    found = re.search(rb"assigned partitions \[([0-9, ]*)\]", answer[1])
    if found is None:
        return []
    return [int(p) for p in found.group(1).split(b",") if p.strip()]


def test_scale_1_3_1_under_load(
    tansu_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = tansu_broker.bootstrap_servers
    name = unique_name("rel-scale")
    rounds = harness.pick(1, 3)
    rate = 150
    # The load runs until the last step is done (each Tansu rebalance waits out a timeout).
    records = rate * 3600
    # Tansu 0.6.0 orphans partitions when static members scale up with cooperative-sticky
    # (the partitions the first member revokes are never assigned to the new ones; seen with
    # plain confluent-kafka consumers too), so the replicas join as dynamic members there.
    base = processor_fields(bootstrap, name, static_membership=tansu_broker.kind != "tansu")
    settings = Settings(**base)
    create_topics(bootstrap, {settings.input_topic: PARTITIONS})
    replicas = [
        ProcessorProcess({**base, "instance_id": f"scale-{i}"}, tmp_path / f"replica-{i}.log")
        for i in range(3)
    ]
    first, extra = replicas[0], replicas[1:]
    load = PacedProducer(bootstrap, settings.input_topic, synthetic(SEED, records, 3_000), rate)
    steps: list[str] = []

    def progress(step: int, alive: list[ProcessorProcess]) -> None:
        done = harness.committed_total(bootstrap, name, settings.input_topic, PARTITIONS)
        harness.wait_progress(
            bootstrap, name, settings.input_topic, PARTITIONS, done + step, 600, alive
        )

    with harness.closing(*replicas):
        first.start()
        first.wait_ready(180)
        load.start()
        try:
            progress(rate * 3, [first])
            for round_ in range(1, rounds + 1):
                for proc in extra:
                    proc.start()
                for proc in extra:
                    proc.wait_ready(300)
                # Every replica owns partitions: the group really is three wide.
                wait_until(
                    lambda: all(_assigned(p) for p in replicas),
                    300,
                    interval=0.5,
                    message=lambda: f"assignments {[_assigned(p) for p in replicas]}",
                )
                spread = [_assigned(p) for p in replicas]
                progress(rate * 3, replicas)
                for proc in extra:
                    code = proc.terminate(120)
                    assert code == 0, f"{proc.log_path.name}: exit {code}\n{proc.log()[-4000:]}"
                wait_until(
                    lambda: sorted(_assigned(first)) == list(range(PARTITIONS)),
                    300,
                    interval=0.5,
                    message=lambda: f"the last replica has {_assigned(first)}",
                )
                progress(rate * 3, [first])
                steps.append(f"round {round_}: 1 -> 3 {spread} -> 1")
            sent = load.finish()
        finally:
            load.stop()
        inputs = harness.drain(bootstrap, settings, sent, timeout=600, alive=[first])
        assert first.starts == 1 and first.alive
        assert first.terminate(120) == 0, first.log()[-4000:]
    title = f"scaling 1 -> 3 -> 1 x{rounds} on {tansu_broker.kind}"
    notes = steps
    report, _, _ = harness.history(bootstrap, settings, inputs, title, notes=notes)
    report.assert_exact(allow_copies=not tansu_broker.hides_aborted_transactions)
    harness.assert_no_traceback(*replicas)
