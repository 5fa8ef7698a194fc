"""The processor's job done with Quix Streams (PyPI `quixstreams`, written against 3.28).

A stateful, exactly-once Quix Streams application: per key it keeps the BLAKE2b-128 hash of
the canonical JSON (sorted keys, compact) of the instance minus the private field `note`, plus
a version and the entity type, and emits a small JSON event `{"id", "eventType", "version",
"instance"}` only when the hash changed; a delete (explicit or tombstone) of a live key emits
a Delete event. No CloudEvents headers, no TMF envelope, no schema checks, no dead letters:
this is the lower bound of what a framework-based implementation costs.

State lives in Quix's in-memory store (`MemoryStore`, backed by its changelog topic) when the
installed version has one, else RocksDB under `state_dir`. The app stops itself: the
`on_message_processed` callback calls `Application.stop()` (the documented way to end `run()`
from inside) once `expected_input` records were processed; a timer calls it at `timeout_s`.
`run()` then commits the open checkpoint before it returns.

Version note: quixstreams 3.x pins `confluent-kafka<2.13` while this project needs >= 2.16;
run this peer from its own virtualenv if the resolver refuses the combination.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.peers import PeerResult

__all__ = ["decide_quix", "run_quix"]

PRIVATE_FIELDS = frozenset({"note"})
_TYPE_NAMES = {"service": "Service", "resource": "Resource"}


def _hash(instance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    public = {k: v for k, v in instance.items() if k not in PRIVATE_FIELDS}
    rendering = orjson.dumps(public, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(rendering, digest_size=16).hexdigest(), public


def decide_quix(
    key: str, value: Any, stored: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Pure decision: (events, new state or None when unchanged) for one record.

    State: `{"h": hash or None when deleted, "v": version, "t": "Service" | "Resource"}`.
    """
    op = value.get("operation", "upsert") if isinstance(value, dict) else "delete"
    if value is None or op == "delete":
        if stored is None or stored.get("h") is None:
            return [], None
        version = int(stored["v"]) + 1
        type_name = str(stored["t"])
        event = {
            "id": key,
            "eventType": f"{type_name}DeleteEvent",
            "version": version,
            "instance": {"id": key},
        }
        return [event], {"h": None, "v": version, "t": type_name}
    type_name = _TYPE_NAMES.get(str(value.get("entityType")), "Service")
    digest, public = _hash(value["instance"])
    live = stored is not None and stored.get("h") is not None
    if live and stored is not None and stored["h"] == digest:
        return [], None
    version = (int(stored["v"]) if stored is not None else 0) + 1
    kind = "AttributeValueChange" if live else "Create"
    event = {
        "id": key,
        "eventType": f"{type_name}{kind}Event",
        "version": version,
        "instance": public,
    }
    return [event], {"h": digest, "v": version, "t": type_name}


def run_quix(
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    *,
    consumer_group: str,
    expected_input: int,
    timeout_s: float,
    state_dir: Path,
    commit_interval_s: float = 0.1,
    kafka_config: dict[str, Any] | None = None,
) -> PeerResult:
    """Run the Quix Streams app until `expected_input` input records were processed.

    `commit_interval_s` defaults to the processor's 100 ms (Quix's own default is 5 s).
    `seconds` runs from the first record processed to the return of `Application.run()`
    (final checkpoint commit and shutdown included); after a timeout, to the last record
    processed. `records_out` counts the events the step returned (a retried checkpoint
    would count twice; the output topic read with read_committed is the ground truth).
    """
    from quixstreams import Application, State

    try:
        from quixstreams.state.memory import MemoryStore

        store_type: Any = MemoryStore
    except ImportError:  # older versions: RocksDB only
        store_type = None

    extra = dict(kafka_config or {})
    counts = {"in": 0, "out": 0}
    first_at: list[float] = []
    last_at = [0.0]

    def on_processed(_topic: str, _partition: int, _offset: int) -> None:
        counts["in"] += 1
        last_at[0] = time.monotonic()
        if counts["in"] >= expected_input:
            app.stop()  # run() leaves its loop, commits the checkpoint and returns

    app = Application(
        broker_address=bootstrap,
        consumer_group=consumer_group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=commit_interval_s,
        state_dir=str(state_dir),
        loglevel="WARNING",
        on_message_processed=on_processed,
        consumer_extra_config={
            "max.poll.interval.ms": 10_000,
            "session.timeout.ms": 6_000,
            **extra,
        },
        producer_extra_config={"partitioner": "murmur2_random", "linger.ms": 5, **extra},
    )
    source = app.topic(input_topic, key_deserializer="str", value_deserializer="json")
    sink = app.topic(output_topic, key_serializer="str", value_serializer="json")

    def step(
        value: Any, key: Any, _timestamp: int, _headers: Any, state: State[str, Any]
    ) -> list[dict[str, Any]]:
        if not first_at:
            first_at.append(time.monotonic())
        events, new_state = decide_quix(str(key), value, state.get("s"))
        if new_state is not None:
            state.set("s", new_state)
        counts["out"] += len(events)
        return events

    sdf = app.dataframe(source)
    if store_type is not None:
        sdf.register_store(store_type=store_type)  # before the stateful step registers RocksDB
    sdf = sdf.apply(step, stateful=True, metadata=True, expand=True)
    sdf.to_topic(sink)

    timer = threading.Timer(timeout_s, app.stop)
    timer.daemon = True
    timer.start()
    try:
        app.run()
    finally:
        timer.cancel()
    # on a timeout, the idle wait at the end is not part of the work
    ended = time.monotonic() if counts["in"] >= expected_input else last_at[0]
    seconds = ended - first_at[0] if first_at else 0.0
    return PeerResult.of("quix", counts["in"], counts["out"], seconds)
