"""One benchmark step in a process of its own, so every figure comes from a clean process.

    python bench/worker.py MODE 'JSON arguments'

Modes: `passthrough`, `floor` (bench/peers/floor.py), `quix` (run from the Quix virtualenv),
`tmf` (the real Processor), `restart` (time to ready with a pre-filled changelog, then
resident memory per key), and the latency run's `send`, `read` and `hop` (bench/latency_io.py). The
worker prints JSON lines on stdout: `{"event": "ready", ...}` when the processor is ready,
`{"event": "first", ...}` at its first commit when asked (the profiler attaches then), and
`{"event": "result", ...}` last. Everything else (logs) goes to stderr.

Only the standard library is imported at the top: the `quix` mode runs in a virtualenv that
has Quix Streams and its pinned confluent-kafka, not this project's dependencies.
`time.monotonic()` is CLOCK_MONOTONIC, shared by every process on the machine, so the
parent can compare the times reported here with its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STARTED = time.monotonic()


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle_memory() -> None:
    """Collect garbage and give freed heap pages back to the kernel (glibc malloc_trim)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# -- peers ------------------------------------------------------------------------------------


def run_passthrough_mode(args: dict[str, Any]) -> dict[str, Any]:
    from bench.peers.passthrough import run_passthrough

    result = run_passthrough(
        args["bootstrap"],
        args["input_topic"],
        args["output_topic"],
        group_id=args["group"],
        transactional_id=f"{args['group']}-tx",
        max_batch=args["max_batch"],
        commit_interval_ms=args["commit_interval_ms"],
        expected=args["expected"],
        timeout_s=args["timeout_s"],
        kafka_config=args.get("kafka") or {},
    )
    return _peer(result)


def _peer(result: Any) -> dict[str, Any]:
    return {
        "records_in": result.records_in,
        "records_out": result.records_out,
        "seconds": result.seconds,
        "records_per_s": result.records_per_s,
    }


def run_floor_mode(args: dict[str, Any]) -> dict[str, Any]:
    """The I/O floor (bench/peers/floor.py): its output is prepared before the clock starts."""
    from bench.peers.floor import job_output, run_floor

    settings = _settings(args)
    output = job_output(settings)
    if args.get("slim_changelog"):
        output = output.slim()
    from bench.cpu import CpuMeter

    meter = CpuMeter(args.get("broker_pid"))
    result = run_floor(
        settings,
        output,
        expected=args["expected"],
        timeout_s=args["timeout_s"],
        one_flush=bool(args.get("one_flush")),
        on_commit=meter.commit,
    )
    return {**_peer(result), "distinct_events": len(output.events), "cpu": meter.figures()}


def run_quix_mode(args: dict[str, Any]) -> dict[str, Any]:
    import quixstreams

    from bench.peers.quix import run_quix

    result = run_quix(
        args["bootstrap"],
        args["input_topic"],
        args["output_topic"],
        consumer_group=args["group"],
        expected_input=args["expected"],
        timeout_s=args["timeout_s"],
        state_dir=Path(args["state_dir"]),
        commit_interval_s=args["commit_interval_ms"] / 1000,
        kafka_config=args.get("kafka") or {},
    )
    return {**_peer(result), "quixstreams": quixstreams.__version__}


# -- tmf-events ------------------------------------------------------------------------------


def _settings(args: dict[str, Any]) -> Any:
    from processor.config import Settings

    return Settings(
        bootstrap_servers=args["bootstrap"],
        app_id=args["app_id"],
        input_topic=args["input_topic"],
        service_topic=args.get("service_topic", f"{args['app_id']}.service.events"),
        resource_topic=args.get("resource_topic", f"{args['app_id']}.resource.events"),
        instance_id="bench",
        http_port=0,
        private_fields=["note"],
        commit_interval_ms=args.get("commit_interval_ms", 100),
        max_batch=args.get("max_batch", 2000),
        log_level="WARNING",
        kafka=args.get("kafka") or {},
        state_dir=args.get("state_dir"),
    )


def _bench_processor(
    settings: Any,
    stop: threading.Event,
    expected: int | None,
    announce_first: bool,
    meter: Any = None,  # a bench.cpu.CpuMeter
) -> Any:
    """The real Processor, observed: it records the first record it consumes (the loop's own
    `first_record_at`) and counts committed records through its `on_commit` hook, stopping
    itself at the commit that covers the `expected`-th input record."""
    from processor.loop import Processor
    from processor.task import Tallies

    processor: Any = None
    announced = False

    def on_commit(tallies: Tallies) -> None:
        nonlocal announced
        processor.committed_records += tallies.records
        if meter is not None:
            meter.commit(processor.committed_records)
        if announce_first and not announced and processor.first_record_at is not None:
            announced = True
            emit("first", at=processor.first_record_at)
        done = expected is not None and processor.committed_records >= expected
        if done and processor.done_at is None:
            processor.done_at = time.monotonic()
            stop.set()

    processor = Processor(settings, stop=stop, create_topics=True, on_commit=on_commit)
    processor.committed_records = 0
    processor.done_at = None
    return processor


def _samples(registry: Any) -> dict[str, float]:
    """Every sample of the registry as `name{label=value,...}` → value (labels sorted)."""
    out: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def _watch(stop: threading.Event, seconds: float) -> None:
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()


def _ready_notifier(processor: Any, stop: threading.Event) -> None:
    def watch() -> None:
        while not stop.is_set():
            if processor.readiness()[0]:
                emit("ready", at=time.monotonic())
                return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True, name="ready-watch").start()


def run_tmf_mode(args: dict[str, Any]) -> dict[str, Any]:
    """Throughput (`expected` set: stop at the commit covering that many records) or a
    latency run (`expected` null: run until SIGTERM)."""
    from processor.logs import setup_logging

    setup_logging("text", "WARNING")
    expected: int | None = args.get("expected")
    stop = threading.Event()
    from bench.cpu import CpuMeter

    meter = CpuMeter(args.get("broker_pid"))
    processor = _bench_processor(
        _settings(args), stop, expected, bool(args.get("announce_first")), meter
    )
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
    _ready_notifier(processor, stop)
    _watch(stop, args["timeout_s"])
    run_started = time.monotonic()
    processor.run()
    first, done = processor.first_record_at, processor.done_at
    seconds = (done - first) if first is not None and done is not None else 0.0
    records = processor.committed_records
    return {
        "records_in": records,
        "seconds": seconds,
        "records_per_s": records / seconds if seconds > 0 else 0.0,
        "complete": expected is None or records >= expected,
        "run_started": run_started,
        "first_at": first,
        "done_at": done,
        "metrics": _samples(processor.metrics.registry),
        "cpu": meter.figures(),
    }


def run_restart_mode(args: dict[str, Any]) -> dict[str, Any]:
    """Time to ready with a pre-filled changelog, then RSS per key after touching every key.

    RSS is taken with the heap trimmed: before the Processor exists (imports done), and after
    the processor stopped (clients closed) with every restored key decoded;
    and once more after the store is dropped (what the keys alone held).
    """
    from processor.logs import setup_logging
    from processor.loop import Processor  # the processor's modules, before the first RSS

    setup_logging("text", "WARNING")
    settings = _settings(args)
    settle_memory()
    rss_before = rss_bytes()
    stop = threading.Event()
    processor = Processor(settings, stop=stop, create_topics=False)
    _watch(stop, args["timeout_s"])
    thread = threading.Thread(target=processor.run, name="processor", daemon=True)
    run_started = time.monotonic()
    thread.start()
    ready_at: float | None = None
    partitions = set(range(args["partitions"]))
    while thread.is_alive() and not stop.is_set():
        # ready, and with every partition: readiness() alone is also true after all
        # partitions were lost (nothing left to restore)
        if processor.readiness()[0] and processor.assigned == partitions:
            ready_at = time.monotonic()
            break
        time.sleep(0.005)
    rss_ready = rss_bytes()
    # Closing the consumer revokes its partitions, and a revoke drops their state: keep the
    # restored partitions' maps referenced and decode every entry with the store's form.
    form = processor.store.form
    held = dict(processor.store.partitions)
    stop_started = time.monotonic()
    stop.set()
    thread.join(120)  # with state_dir the revoke writes the snapshots
    stop_seconds = time.monotonic() - stop_started
    keys = sum(len(entries) for entries in held.values())
    settle_memory()
    rss_restored = rss_bytes()
    touch_started = time.monotonic()
    for entries in held.values():
        for key, value in entries.items():
            form.load(key, value)
    touch_seconds = time.monotonic() - touch_started
    settle_memory()
    rss_touched = rss_bytes()
    processor.store.partitions.clear()
    held.clear()
    settle_memory()
    rss_dropped = rss_bytes()
    return {
        "keys": keys,
        "ready": ready_at is not None,
        "process_started": STARTED,
        "run_started": run_started,
        "ready_at": ready_at,
        "seconds_to_ready": (ready_at - run_started) if ready_at is not None else None,
        "rss_before": rss_before,
        "rss_ready": rss_ready,
        "rss_restored": rss_restored,
        "rss_touched": rss_touched,
        "rss_dropped": rss_dropped,
        "touch_seconds": touch_seconds,
        "stop_seconds": stop_seconds,
        "metrics": _samples(processor.metrics.registry),
    }


# -- the ends of the latency run (bench/latency_io.py) --------------------------------------


def run_send_mode(args: dict[str, Any]) -> dict[str, Any]:
    from bench.latency_io import send_paced
    from processor import clients
    from processor.config import Settings

    settings = Settings(bootstrap_servers=args["bootstrap"], instance_id="bench")
    return send_paced(args, clients.plain_producer(settings, "bench-send"))


def run_read_mode(args: dict[str, Any]) -> dict[str, Any]:
    from bench.latency_io import read_events

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    samples = Path(args["samples"])
    return read_events(args["bootstrap"], args["topics"], args["kafka"], samples, stop, emit)


def run_hop_mode(args: dict[str, Any]) -> dict[str, Any]:
    from bench.latency_io import broker_hop

    return broker_hop(args["bootstrap"], args["topic"], args["kafka"], args["fetch_wait_ms"])


MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "send": run_send_mode,
    "read": run_read_mode,
    "hop": run_hop_mode,
    "passthrough": run_passthrough_mode,
    "floor": run_floor_mode,
    "quix": run_quix_mode,
    "tmf": run_tmf_mode,
    "restart": run_restart_mode,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in MODES:
        print(f"usage: {argv[0]} {{{','.join(MODES)}}} 'JSON'", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = MODES[argv[1]](json.loads(argv[2]))
    emit("result", pid=os.getpid(), **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
