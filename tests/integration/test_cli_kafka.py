"""The `tmf-events` command line against a real broker: `run` (SIGTERM), `topics`, `demo`.

The commands run as child processes (`python -m processor.cli`), configured through
`TMF_EVENTS_*` environment variables like a deployment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from processor.config import Settings
from tests.kafka_helpers import Broker, Record, consume_all, create_topics, wait_until
from tests.processes import (
    PacedLoad,
    ProcessorProcess,
    committed_offsets,
    end_offsets,
    expected,
    processor_fields,
    read_input,
    run_cli,
)
from tests.schema_check import assert_valid_event

UniqueName = Callable[[str], str]


def _ids(records: list[Record]) -> Counter[str]:
    return Counter((r.header("ce_id") or b"").decode() for r in records)


def _outputs(
    settings: Settings, isolation: Literal["read_committed", "read_uncommitted"] = "read_committed"
) -> list[Record]:
    return consume_all(
        settings.bootstrap_servers,
        [settings.service_topic, settings.resource_topic],
        isolation=isolation,
        timeout=60,
    )


# -- 6. SIGTERM --------------------------------------------------------------------------------


def test_sigterm_commits_what_was_consumed_and_exits_0(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    name = unique_name("sigterm")
    fields = processor_fields(bootstrap, name, instance_id="term-1")
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 2})

    def committed() -> dict[int, int]:
        return committed_offsets(bootstrap, name, settings.input_topic, (0, 1))

    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    with proc:
        proc.wait_ready(60)
        # 1. SIGTERM in the middle of a steady load: batches are open all the time.
        load = PacedLoad(bootstrap, settings.input_topic, 500, seed=66).start()
        try:
            wait_until(
                lambda: sum(max(o, 0) for o in committed().values()) >= 400,
                60,
                interval=0.1,
                message="the processor committed nothing",
            )
            assert proc.terminate(30) == 0, proc.log()[-3000:]
        finally:
            load.stop()
    at_stop = committed()
    inputs = read_input(bootstrap, settings.input_topic)
    done = [r for r in inputs if r.offset < at_stop[r.partition]]
    assert 0 < len(done) < len(inputs)
    want = Counter(m["headers"]["ce_id"] for m in expected(done, settings))
    assert _ids(_outputs(settings)) == want
    # Nothing was processed past the committed offsets and then dropped: every event ever
    # written (read_uncommitted sees open and aborted transactions too) is a committed one.
    assert set(_ids(_outputs(settings, "read_uncommitted"))) <= set(want)

    # 2. The rest of the input, SIGTERM as soon as every event is written (committed or not).
    ends = end_offsets(inputs)
    want_all = Counter(m["headers"]["ce_id"] for m in expected(inputs, settings))
    with proc:
        proc.wait_ready(60)
        wait_until(
            lambda: set(_ids(_outputs(settings, "read_uncommitted"))) >= set(want_all),
            60,
            interval=0.1,
            message="the processor did not write the events of all records",
        )
        assert proc.terminate(30) == 0, proc.log()[-3000:]
    assert committed() == ends
    events = _outputs(settings)
    assert _ids(events) == want_all
    for record in events:
        assert_valid_event((record.headers, record.value))
    assert "stopped cleanly" in proc.log()


# -- 7. topics ---------------------------------------------------------------------------------


def _config(admin: AdminClient, topic: str, name: str) -> str | None:
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    entry = future.result(timeout=15).get(name)
    return None if entry is None else str(entry.value)


def test_topics_creates_all_five_with_their_settings(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("topics"))
    settings = Settings(**fields)

    result = run_cli(["topics", "--partitions", "3"], fields=fields, timeout=60)

    assert result.returncode == 0, result.stderr
    names = [
        settings.input_topic,
        settings.service_topic,
        settings.resource_topic,
        settings.changelog_topic,
        settings.dlq_topic,
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=15)
    for topic in names:
        assert topic in metadata.topics, topic
        assert len(metadata.topics[topic].partitions) == 3, topic
        assert f"{topic}\t3 partitions" in result.stdout
    assert _config(admin, settings.changelog_topic, "cleanup.policy") == "compact"
    assert _config(admin, settings.input_topic, "cleanup.policy") != "compact"
    # Running it again changes nothing and still succeeds.
    again = run_cli(["topics", "--partitions", "5"], fields=fields, timeout=60)
    assert again.returncode == 0, again.stderr
    metadata = admin.list_topics(timeout=15)
    assert all(len(metadata.topics[t].partitions) == 3 for t in names)


def test_run_refuses_a_changelog_with_another_partition_count(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("layout"))
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 3})
    create_topics(bootstrap, {settings.changelog_topic: 2}, {"cleanup.policy": "compact"})

    result = run_cli(["run"], fields=fields, timeout=60)

    assert result.returncode == 2, (result.returncode, result.stderr)
    message = result.stderr
    assert settings.changelog_topic in message and settings.input_topic in message, message
    assert "2 partitions" in message and "has 3" in message, message
    assert "Traceback" not in message


# -- 8. demo -----------------------------------------------------------------------------------


def test_demo_against_a_running_broker(noida_broker: Broker) -> None:
    result = run_cli(["demo", "--bootstrap-servers", noida_broker.bootstrap_servers], timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Events emitted" in out, out
    for column in ("time (UTC)", "subject", "event type", "version"):
        assert column in out, out
    assert "ServiceCreateEvent" in out, out
