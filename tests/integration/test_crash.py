"""kill -9 of `tmf-events run` in the middle of a load, restarted with the same instance id.

docs/runtime.md#exactly-once / §9: after any number of crashes the committed output holds every
input record's events (0 lost), never two different events for one (subject, entityversion,
eventType) (0 divergent), and on brokers with real transactions (noida-db, Apache Kafka) every event
exactly once (0 copies). On Tansu, whose read_committed shows the records of aborted and zombie
transactions, copies of a crashed batch are allowed; they are counted and printed.

And the zombie case: a replica started while its predecessor (same instance id) still runs
fences it; the predecessor must end itself through the FatalError path (exit 3).
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.config import Settings
from tests.kafka_helpers import Broker, consume_all, create_topics, wait_until
from tests.loads import ENDLESS, PacedProducer, synthetic
from tests.processes import (
    ProcessorProcess,
    committed_offsets,
    end_offsets,
    expected,
    processor_fields,
    read_input,
    wait_consumed,
)
from tests.schema_check import assert_valid_event

UniqueName = Callable[[str], str]

KILLS = 3
PROGRESS = 150  # records each incarnation commits before it is killed


def _crash_and_check(broker: Broker, name: str, log: Path, rate: float) -> None:
    bootstrap = broker.bootstrap_servers
    fields = processor_fields(bootstrap, name, instance_id="crash-1")
    settings = Settings(**fields)
    partitions = 3
    create_topics(bootstrap, {settings.input_topic: partitions})

    def committed() -> int:
        offsets = committed_offsets(bootstrap, name, settings.input_topic, range(partitions))
        return sum(max(o, 0) for o in offsets.values())

    proc = ProcessorProcess(fields, log)
    kills: list[int] = []
    with proc:
        proc.wait_ready(90)
        load = PacedProducer(bootstrap, settings.input_topic, synthetic(55, ENDLESS, 300), rate)
        load.start()
        try:
            for _ in range(KILLS):
                target = committed() + PROGRESS
                wait_until(
                    lambda target=target: committed() >= target,  # type: ignore[misc]
                    90,
                    interval=0.1,
                    message=f"{target} records never committed",
                )
                assert proc.kill() == -9
                kills.append(committed())
                proc.start()
                proc.wait_ready(90)
        finally:
            sent = load.finish()
        inputs = read_input(bootstrap, settings.input_topic)
        assert len(inputs) == sent
        wait_consumed(bootstrap, name, settings.input_topic, end_offsets(inputs), timeout=120)
        assert proc.terminate() == 0, proc.log()[-3000:]

    got = consume_all(bootstrap, [settings.service_topic, settings.resource_topic], timeout=60)
    want: dict[str, dict[str, Any]] = {
        m["headers"]["ce_id"]: m
        for m in expected(inputs, settings)
        if m["topic"] != settings.dlq_topic
    }
    ids = Counter((r.header("ce_id") or b"").decode() for r in got)
    missing = set(want) - set(ids)
    unexpected = set(ids) - set(want)
    copies = {i: n for i, n in ids.items() if n > 1}
    versions: dict[tuple[str, str, str], set[bytes | None]] = defaultdict(set)
    for r in got:
        head = {k: (v or b"").decode() for k, v in r.headers}
        versions[(head["ce_subject"], head["ce_entityversion"], head["ce_type"])].add(r.value)
    divergent = {k: len(v) for k, v in versions.items() if len(v) > 1}
    print(
        f"\n[{broker.kind}] crash test: kills at committed {kills}, {len(inputs)} records,"
        f" {len(want)} expected events, {len(got)} read: missing {len(missing)},"
        f" unexpected {len(unexpected)}, divergent {len(divergent)},"
        f" copies {sum(n - 1 for n in copies.values())} of {len(copies)} events"
    )
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
    assert not unexpected, f"{len(unexpected)} unexpected events, e.g. {sorted(unexpected)[:5]}"
    assert not divergent, f"different events for one subject/version/type: {divergent}"
    if broker.hides_aborted_transactions:
        assert not copies, f"{len(copies)} events more than once, e.g. {list(copies)[:5]}"
    # Copies or not, every event is byte-identical to the one replay computes.
    seen: set[str] = set()
    for r in got:
        ce_id = (r.header("ce_id") or b"").decode()
        assert r.value == orjson.dumps(want[ce_id]["value"]), ce_id
        if ce_id not in seen:
            seen.add(ce_id)
            assert_valid_event((r.headers, r.value))
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def test_kill_9_during_load_loses_nothing_noida(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    _crash_and_check(noida_broker, unique_name("crash"), tmp_path / "processor.log", 400)


def test_kill_9_during_load_loses_nothing_tansu(
    tansu_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    if tansu_broker.kind != "tansu":
        pytest.skip("the external broker runs this test once, in the noida variant")
    _crash_and_check(tansu_broker, unique_name("crash"), tmp_path / "processor.log", 150)


# -- a zombie: the same instance id started twice ----------------------------------------------


class ProcessorBugError(AssertionError):
    """How a replica that should have been fenced misbehaved."""


FENCED_EXIT = 3  # `tmf-events run` on FatalError (fenced, fatal client error)


def _fatal_exit_problem(code: int | None, log: str) -> str | None:
    """What is wrong with how a fenced replica ended (None: it took the FatalError path)."""
    if code is None:
        return "it never exited"
    if code != FENCED_EXIT or "Traceback" in log or "fatal" not in log:
        return f"it exited {code}, not through the FatalError path (exit {FENCED_EXIT})"
    return None


def test_an_idle_replica_fenced_by_its_twin_exits(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("idle-twin"), instance_id="twin")
    create_topics(bootstrap, {fields["input_topic"]: 2})
    first = ProcessorProcess(fields, tmp_path / "first.log")
    second = ProcessorProcess(fields, tmp_path / "second.log")
    with first:
        first.wait_ready(60)
        with second:
            second.wait_ready(60)
            # No input: only the group (static membership) and init_transactions fence the
            # first one; it holds no transaction that could fail.
            code = first.exited_within(10)
            readyz = first.readyz() if code is None else None
            assert second.alive and second.ready()
            assert second.terminate() == 0, second.log()[-3000:]
    problem = _fatal_exit_problem(code, first.log())
    if problem:
        tail = "\n".join(first.log().splitlines()[-8:])
        raise ProcessorBugError(
            f"fenced idle replica: {problem}; /readyz then: {readyz}; its log ends:\n{tail}"
        )


def test_a_second_replica_with_the_same_instance_id_fences_the_first(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    name = unique_name("twin")
    fields = processor_fields(bootstrap, name, instance_id="twin")
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 2})

    def committed() -> int:
        offsets = committed_offsets(bootstrap, name, settings.input_topic, (0, 1))
        return sum(max(o, 0) for o in offsets.values())

    first = ProcessorProcess(fields, tmp_path / "first.log")
    second = ProcessorProcess(fields, tmp_path / "second.log")
    with first, contextlib.ExitStack() as later:
        first.wait_ready(90)
        load = PacedProducer(bootstrap, settings.input_topic, synthetic(77, ENDLESS, 300), 300)
        load.start()
        try:
            wait_until(lambda: committed() >= 200, 60, interval=0.1, message="no progress")
            # The "restarted" replica comes back while the old one still runs (a network
            # partition, a stuck node): same transactional.id and group.instance.id.
            later.enter_context(second)
            second.wait_ready(90)
            first_code = first.exited_within(20)
            first.close()
            wait_until(lambda: committed() >= 400, 60, interval=0.1, message="the second is stuck")
        finally:
            sent = load.finish()
        inputs = read_input(bootstrap, settings.input_topic)
        assert len(inputs) == sent
        wait_consumed(bootstrap, name, settings.input_topic, end_offsets(inputs))
        assert second.terminate() == 0, second.log()[-3000:]

    # The takeover itself is exact: every event once, none lost.
    got = consume_all(bootstrap, [settings.service_topic, settings.resource_topic], timeout=60)
    ids = Counter((r.header("ce_id") or b"").decode() for r in got)
    want = {m["headers"]["ce_id"] for m in expected(inputs, settings)}
    assert set(ids) == want
    if noida_broker.hides_aborted_transactions:
        assert all(n == 1 for n in ids.values()), "copies after the fencing"
    for record in got:
        assert_valid_event((record.headers, record.value))
    problem = _fatal_exit_problem(first_code, first.log())
    if problem:
        tail = "\n".join(first.log().splitlines()[-12:])
        raise ProcessorBugError(f"fenced busy replica: {problem}; its log ends:\n{tail}")
