"""The restart step: time to ready with a pre-filled changelog (cold, then from snapshots)
and resident memory per key."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from random import Random
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, Producer

from bench.common import GROUP_KAFKA, StepError, progress
from bench.workers import Worker
from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.records import InputRecord
from processor.state.codec import decode_state, encode_state
from processor.state.model import State, StoredEvent
from processor.task import new_task

if TYPE_CHECKING:
    from bench.run import Bench


def restart(bench: Bench) -> dict[str, Any]:
    a = bench.args
    app_id = f"{bench.run_id}-tmf-restart"
    input_topic = f"{bench.run_id}.restart.input"
    bench.create_topics([input_topic])
    topics = bench.tmf_topics(app_id, input_topic)
    changelog = f"{app_id}-state-changelog"
    fill = prefill(bench, changelog, a.restart_keys)
    # The processor's own group timing here (not the peers' short session): noida answers
    # nothing else while it builds a 2 GB fetch response, and a 6 s session would expire
    # in the middle of the restore. Tansu still needs the short one for its first join.
    kafka = dict(bench.kafka)
    if bench.report["broker"]["kind"] != "tansu":
        for name in GROUP_KAFKA:
            if name not in a.kafka:
                kafka.pop(name, None)
    state_dir = bench.logs / "restart-state"
    worker_args = {
        "bootstrap": bench.bootstrap,
        "app_id": app_id,
        "partitions": a.partitions,
        "timeout_s": max(120.0, a.restart_keys / 5000),
        "max_batch": a.max_batch,
        "commit_interval_ms": a.commit_interval_ms,
        "kafka": kafka,
        "state_dir": str(state_dir),
        **topics,
    }
    # Cold: no snapshot yet, the whole changelog is read; stopping writes the snapshots.
    # Warm: the restart an operator sees with state_dir on a volume.
    result = restart_worker(bench, "restart-cold", worker_args, "from the changelog")
    warm = restart_worker(bench, "restart-warm", worker_args, "from the snapshots")
    snapshots = sorted(state_dir.rglob("*.snapshot"))
    result["cold_seconds_to_ready"] = result["seconds_to_ready"]
    result["seconds_to_ready"] = warm["seconds_to_ready"]
    result["warm"] = {
        k: warm[k]
        for k in ("seconds_to_ready", "seconds_from_process_start", "restored_records", "keys")
    }
    result["warm"]["mb_per_1m_keys"] = warm["mb_per_1m_keys"]
    result["snapshot_bytes"] = sum(p.stat().st_size for p in snapshots)
    result["kafka"] = kafka
    result["prefill"] = fill
    shutil.rmtree(state_dir, ignore_errors=True)
    return result


def restart_worker(
    bench: Bench, name: str, worker_args: dict[str, Any], how: str
) -> dict[str, Any]:
    a = bench.args
    worker = Worker(name, sys.executable, "restart", worker_args, bench.logs / f"{name}.log")
    with bench.console.status(f"{name}: restoring {a.restart_keys:,} keys {how} ..."):
        try:
            result = worker.wait("result", worker_args["timeout_s"] + 120)
        finally:
            worker.stop()
    result.pop("event", None)
    metrics = result.pop("metrics", {})
    result["restored_records"] = int(metrics.get("tmf_events_restored_records_total", 0))
    result["partitions_lost"] = int(metrics.get("tmf_events_rebalances_total{kind=lost}", 0))
    # noida answers a restore fetch with the whole changelog in one response; when
    # building it takes longer than socket.timeout.ms (60 s) the client retries it
    result["request_timeouts"] = worker.log.read_text(errors="replace").count("REQTMOUT")
    if not result["ready"]:
        raise StepError(f"{name}: the processor was not ready; {worker.tail()}")
    if result["keys"] != a.restart_keys:
        raise StepError(f"{name}: restored {result['keys']} keys, expected {a.restart_keys}")
    result["seconds_from_process_start"] = result["ready_at"] - worker.spawned
    keys = result["keys"]
    mb = 1024 * 1024
    result["mb_per_1m_keys"] = (result["rss_touched"] - result["rss_before"]) / mb * 1e6 / keys
    result["mb_per_1m_keys_encoded"] = (
        (result["rss_restored"] - result["rss_before"]) / mb * 1e6 / keys
    )
    result["mb_per_1m_keys_store"] = (
        (result["rss_touched"] - result["rss_dropped"]) / mb * 1e6 / keys
    )
    return result


def prefill(bench: Bench, topic: str, keys: int) -> dict[str, Any]:
    """Write `keys` encoded state records straight into the changelog, batch-produced.

    The states are real: the Core's output for a seeded synthetic history over 1,000
    keys, cloned with a new key and event id per record (sizes stay those of real ones).
    """
    a = bench.args
    templates = sample_states(a.seed, a.instance_bytes)
    producer = Producer(
        {
            "bootstrap.servers": bench.bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": a.changelog_compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    failed = [0]

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failed[0] += 1

    total_bytes = 0
    started = time.monotonic()
    with progress(bench.console) as bar:
        task = bar.add_task("changelog prefill", total=keys, note="state records")
        for i, (key, value) in enumerate(cloned_states(templates, keys, a.seed)):
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            total_bytes += len(key) + len(value)
            if i % 5000 == 0:
                producer.poll(0)
                bar.update(task, completed=i)
        remaining = producer.flush(300)
        bar.update(task, completed=keys)
    if remaining or failed[0]:
        raise StepError(f"changelog prefill: {remaining + failed[0]} records not delivered")
    return {
        "records": keys,
        "bytes": total_bytes,
        "avg_record_bytes": total_bytes / max(1, keys),
        "seconds": time.monotonic() - started,
    }


def sample_states(seed: int, instance_bytes: int, keys: int = 1000) -> list[State]:
    """The states the Core leaves after a seeded synthetic history of 3 records per key."""
    settings = Settings(private_fields=["note"], instance_id="bench")
    task = new_task(settings)
    gen = Generator(seed=seed, keys=keys, mix=Mix(), instance_bytes=instance_bytes)
    for offset, rec in enumerate(gen.records(keys * 3)):
        record = InputRecord("inventory.changes", 0, offset, rec.timestamp_ms, rec.key, rec.value)
        task.process(record)
    # The changelog values (with their last event), as the processor would write them.
    states = [decode_state(write["value"]) for write in task.changelog()]
    if not states:
        raise StepError("the synthetic history left no state")
    return states


def cloned_states(templates: list[State], count: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """`count` (key, encode_state(state)) pairs: template i % len(templates) with a fresh
    random UUID key and a fresh event id put everywhere the template's own appear."""
    rng = Random(seed)
    for i in range(count):
        t = templates[i % len(templates)]
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        old_key = t.href.rsplit("/", 1)[-1] if t.href else ""
        event_id = t.last_event_id[:-12] + f"{i:012x}" if t.last_event_id else None
        events = tuple(
            StoredEvent(
                event_id or e.id,
                e.type,
                e.time,
                e.topic,
                e.cloudevent.replace(old_key, key).replace(e.id, event_id or e.id),
            )
            for e in t.events
        )
        state = dataclasses.replace(
            t,
            href=t.href.replace(old_key, key) if t.href else None,
            last_event_id=event_id,
            offset=i,
            events=events,
        )
        yield key.encode(), encode_state(state)
