"""The `tmf-events` command line against a real broker: `run` (SIGTERM), `topics`, `demo`.

The commands run as child processes (`python -m processor.cli`), configured through
`TMF_EVENTS_*` environment variables like a deployment.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import orjson
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from processor.config import Settings
from processor.dev.broker import EmbeddedBroker
from tests.kafka_helpers import Broker, Record, consume_all, create_topics, wait_until
from tests.loads import ENDLESS, PacedProducer, synthetic
from tests.processes import (
    ProcessorProcess,
    ProcessorThread,
    Send,
    committed_offsets,
    end_offsets,
    exit_within,
    expected,
    processor_fields,
    read_input,
    run_cli,
    send,
    spawn_cli,
    stopping,
)
from tests.schema_check import assert_valid_event

UniqueName = Callable[[str], str]
RETENTION_MS = 90 * 24 * 3600 * 1000  # not the broker default (7 days)


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
        load = PacedProducer(bootstrap, settings.input_topic, synthetic(66, ENDLESS, 300), 500)
        load.start()
        try:
            wait_until(
                lambda: sum(max(o, 0) for o in committed().values()) >= 400,
                60,
                interval=0.1,
                message="the processor committed nothing",
            )
            assert proc.terminate(30) == 0, proc.log()[-3000:]
        finally:
            load.finish()
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
    fields = processor_fields(bootstrap, unique_name("topics"), events_retention_ms=RETENTION_MS)
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
    # The events are a history: kept events_retention_ms, the other topics as the broker says.
    for topic in (settings.service_topic, settings.resource_topic):
        assert _config(admin, topic, "retention.ms") == str(RETENTION_MS), topic
    for topic in (settings.input_topic, settings.changelog_topic, settings.dlq_topic):
        assert _config(admin, topic, "retention.ms") != str(RETENTION_MS), topic
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
    # It ends with one event in full, its headers and its JSON, and what to try next.
    full = out.split("One event in full", 1)[1]
    for header in ("ce_id", "ce_type", "ce_subject", "ce_previousid", "content-type"):
        assert header in full, full
    assert '"eventType": "ServiceStateChangeEvent"' in full, full
    for command in ("tmf-events run", "tmf-events tail", "tmf-events latest", "tmf-events load"):
        assert command in full, full


# -- 9. tail -----------------------------------------------------------------------------------


def _change(key: str, entity: str, minute: int, **attrs: str) -> Send:
    instance = {"id": key, "name": f"{entity} {key}", **attrs}
    value = {
        "entityType": entity,
        "observedAt": f"2026-01-01T10:{minute:02d}:00.000Z",
        "instance": instance,
    }
    return Send(key.encode(), orjson.dumps(value))


def test_tail_prints_each_committed_event_and_stops_on_sigterm(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("tail"))
    settings = Settings(**fields)
    assert run_cli(["topics", "--partitions", "2"], fields=fields, timeout=60).returncode == 0
    out_path, err_path = tmp_path / "tail.out", tmp_path / "tail.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        tail = spawn_cli(["tail"], fields=fields, stdout=out, stderr=err)
    try:
        wait_until(
            lambda: out_path.read_text().startswith("time") or tail.poll() is not None,
            60,
            message=lambda: f"tail printed no header: {err_path.read_text()}",
        )
        with ProcessorThread(settings) as processor:
            processor.wait_ready()
            send(
                bootstrap,
                settings.input_topic,
                [
                    _change("svc-1", "service", 1, state="designed"),
                    _change("svc-1", "service", 2, state="active"),
                    _change("res-1", "resource", 3, resourceStatus="available"),
                ],
            )
            rows = wait_until(
                lambda: (
                    (lines := out_path.read_text().splitlines()[1:]) and len(lines) >= 3 and lines
                ),
                60,
                message=lambda: f"tail printed: {out_path.read_text()!r} {err_path.read_text()}",
            )
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(20) == 0, err_path.read_text()
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(30)
    events = _outputs(settings)
    printed = sorted((r.split()[1], r.split()[2], r.split()[4]) for r in rows)
    assert printed == sorted(
        (
            (e.header("ce_subject") or b"").decode(),
            (e.header("ce_type") or b"").decode().rsplit(".", 1)[-1],
            (e.header("ce_id") or b"").decode(),
        )
        for e in events
    )
    assert {p[1] for p in printed} == {
        "ServiceCreateEvent",
        "ServiceStateChangeEvent",
        "ResourceCreateEvent",
    }

    # From the beginning, as CloudEvents JSON, one subject and one type.
    done = run_cli(
        ["tail", "--from-beginning", "--json", "--subject", "svc-1", "--type",
         "ServiceStateChangeEvent", "--count", "1"],
        fields=fields,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    event = orjson.loads(line)
    (change,) = [e for e in events if b"StateChange" in (e.header("ce_type") or b"")]
    assert event["id"] == (change.header("ce_id") or b"").decode()
    assert event["subject"] == "svc-1"
    assert event["data"] == orjson.loads(change.value or b"")


# -- 10. the progress line -------------------------------------------------------------------------


def test_run_logs_progress_and_where_it_starts_in_words(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    bootstrap = noida_broker.bootstrap_servers
    fields = processor_fields(bootstrap, unique_name("progress"), progress_interval_s=0.5)
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 1})
    send(bootstrap, settings.input_topic, [_change("svc-1", "service", 1, state="designed")])
    proc = ProcessorProcess(fields, tmp_path / "processor.log")
    with proc:
        proc.wait_ready(60)
        line = wait_until(
            lambda: _line_with(proc.log(), "progress: 1 records", "ServiceCreateEvent 1"),
            30,
            message=lambda: f"no progress line with the record; log:\n{proc.log()[-3000:]}",
        )
        assert "dead letters: none; skipped: none" in line and "1 commits, 0 aborts" in line
        # The lag gauge is published a moment after the first records: a later line has it.
        wait_until(
            lambda: _line_with(proc.log(), "progress: 0 records", "lag: 0 records"),
            30,
            message=lambda: f"no progress line with the lag; log:\n{proc.log()[-3000:]}",
        )
        assert proc.terminate(30) == 0
    assert "partition 0 restored (0 keys); consuming from the beginning" in proc.log()


def _line_with(log: str, *words: str) -> str | None:
    return next((ln for ln in log.splitlines() if all(w in ln for w in words)), None)


# -- 11. load when its broker goes away --------------------------------------------------------


def test_load_stops_with_4_when_its_broker_goes_away(
    noida_private_broker: EmbeddedBroker, unique_name: UniqueName, tmp_path: Path
) -> None:
    """Deliveries that find no broker for connect_timeout_ms end `load` (exit 4) instead of
    the client retrying for ever; its errors come out as a few lines, not a flood."""
    bootstrap = noida_private_broker.bootstrap_servers
    connect_ms = 3000
    fields = processor_fields(bootstrap, unique_name("load-gone"), connect_timeout_ms=connect_ms)
    settings = Settings(**fields)
    create_topics(bootstrap, {settings.input_topic: 1})
    out_path, err_path = tmp_path / "load.out", tmp_path / "load.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        load = spawn_cli(
            ["load", "--quiet", "--count", "1000000", "--rate", "500"],
            fields=fields,
            stdout=out,
            stderr=err,
        )

    def sent_some() -> bool:
        return load.poll() is not None or bool(read_input(bootstrap, settings.input_topic))

    with stopping(load):
        wait_until(
            sent_some,
            60,
            message=lambda: f"load sent nothing: {err_path.read_text()}",
        )
        assert load.poll() is None, err_path.read_text()
        noida_private_broker.kill()
        code = exit_within(load, connect_ms / 1000 + 30)
    stderr = err_path.read_text()
    assert code == 4, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) <= 6, stderr  # a few throttled client lines at most, and ours
    assert lines[-1].startswith(f"tmf-events load: cannot reach Kafka at {bootstrap}"), stderr
    assert "deliveries failed" in lines[-1] and "Traceback" not in stderr
