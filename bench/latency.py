"""The latency step: tmf-events at a share of its maximum rate, with the sender, the
processor and a read_committed reader each in a process of its own (bench/latency_io.py),
and where the time goes: the broker's own delivery time (one hop, as the processor's input
consumer and as the reader see it), the processor's event → commit time from its histogram,
its batches and commits."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import StepError, percentile, progress
from bench.workers import Worker

if TYPE_CHECKING:
    from bench.run import Bench

# librdkafka's default fetch.wait.max.ms (the processor's input consumer keeps it) and the
# reader's.
_FETCH_WAITS = {"processor": 500, "reader": 10}


def latency(bench: Bench, share: float = 0.5) -> dict[str, Any]:
    """tmf-events at `share` of its measured maximum (or at --latency-rate)."""
    a = bench.args
    tmf = bench.report["steps"].get("tmf-events")
    if a.latency_rate:
        rate, basis = float(a.latency_rate) * share / 0.5, "--latency-rate"
    elif tmf:
        rate, basis = tmf["records_per_s"] * share, f"{share:.0%} of the measured maximum"
    else:
        raise StepError("no tmf-events rate measured; give --latency-rate")
    count = max(1, int(rate * a.latency_seconds))
    tag = f"latency-{round(share * 100)}"
    app_id = f"{bench.run_id}-tmf-{tag}"
    input_topic = f"{bench.run_id}.{tag}.input"
    bench.create_topics([input_topic])
    topics = bench.tmf_topics(app_id, input_topic)
    common = {"bootstrap": bench.bootstrap, "kafka": bench.kafka}
    processor = Worker(
        f"tmf-{tag}",
        sys.executable,
        "tmf",
        {
            **common,
            "app_id": app_id,
            "expected": None,
            "timeout_s": a.latency_seconds + 600,
            "max_batch": a.max_batch,
            "commit_interval_ms": a.commit_interval_ms,
            **topics,
        },
        bench.logs / f"tmf-{tag}.log",
    )
    samples = bench.logs / f"{tag}-samples.txt"
    reader = Worker(
        f"reader-{tag}",
        sys.executable,
        "read",
        {**common, "topics": [topics["service_topic"], topics["resource_topic"]],
         "samples": str(samples)},
        bench.logs / f"reader-{tag}.log",
    )  # fmt: skip
    sender = None
    try:
        processor.wait("ready", 120)
        reader.wait("ready", 60)
        sender = Worker(
            f"sender-{tag}",
            sys.executable,
            "send",
            {**common, "topic": input_topic, "rate": rate, "count": count, "seed": a.seed,
             "keys": a.keys, "instance_bytes": a.instance_bytes},
            bench.logs / f"sender-{tag}.log",
        )  # fmt: skip
        with progress(bench.console) as bar:
            task = bar.add_task(f"latency @ {rate:,.0f}/s", total=count, note="committed")
            tick = bench.committed_ticker(bar, task, app_id, input_topic)
            sent = sender.wait("result", a.latency_seconds * 4 + 300, tick)
            # the events of the last records arrive within a commit interval or two
            reader.wait("quiet", 120, tick)
    finally:
        if sender is not None:
            sender.stop()
        reader.signal(signal.SIGTERM)
        processor.signal(signal.SIGTERM)
    try:
        reader.wait("result", 60)
        result = processor.wait("result", 60)
    finally:
        reader.stop()
        processor.stop()
    return summarize(bench, share, rate, basis, sent, samples, result)


def summarize(
    bench: Bench,
    share: float,
    rate: float,
    basis: str,
    sent: dict[str, Any],
    samples_path: Path,
    result: dict[str, Any],
) -> dict[str, Any]:
    a = bench.args
    pairs = [tuple(map(float, line.split())) for line in samples_path.read_text().splitlines()]
    # the first seconds hold the start-up (first fetches, first transaction to each output
    # partition): steady state only; the timeline keeps everything
    warmup_s = min(3.0, a.latency_seconds / 4)
    start_ms = sent["started_wall"] * 1000
    samples = sorted(lat for sent_ms, lat in pairs if sent_ms >= start_ms + warmup_s * 1000)
    if not samples:
        raise StepError("the latency run saw no events")
    metrics = result.get("metrics", {})
    commits = metrics.get("tmf_events_commit_duration_seconds_count", 0)
    by_second: dict[int, list[float]] = {}
    for sent_ms, lat in pairs:
        by_second.setdefault(int((sent_ms - start_ms) / 1000), []).append(lat)
    timeline = [
        {"second": s, "events": len(v), "p50_ms": percentile(sorted(v), 50),
         "p99_ms": percentile(sorted(v), 99)}
        for s, v in sorted(by_second.items())
    ]  # fmt: skip
    return {
        "share_of_max": share,
        "rate_target": rate,
        "rate_achieved": sent["sent"] / sent["seconds"] if sent["seconds"] > 0 else 0.0,
        "records_sent": sent["sent"],
        "events_seen": len(pairs),
        "events_measured": len(samples),
        "warmup_s": warmup_s,
        "rate_basis": basis,
        "p50_ms": percentile(samples, 50),
        "p90_ms": percentile(samples, 90),
        "p99_ms": percentile(samples, 99),
        "max_ms": samples[-1],
        "mean_ms": sum(samples) / len(samples),
        "processor_event_to_commit": histogram_quantiles(metrics),
        "processor_committed_records": result.get("records_in"),
        "transactions": int(commits),
        "avg_commit_ms": (
            metrics["tmf_events_commit_duration_seconds_sum"] / commits * 1000 if commits else None
        ),
        "avg_batch_records": (result.get("records_in") or 0) / commits if commits else None,
        "timeline": timeline,
    }


def histogram_quantiles(metrics: dict[str, float]) -> dict[str, float | None]:
    """p50 / p99 (ms, the upper bound of the bucket they fall in) of the processor's
    event time → commit histogram."""
    prefix = "tmf_events_end_to_end_latency_seconds_bucket{le="
    buckets = sorted(
        (float(k[len(prefix) : -1]), v) for k, v in metrics.items() if k.startswith(prefix)
    )
    total = buckets[-1][1] if buckets else 0
    out: dict[str, float | None] = {"p50_ms": None, "p99_ms": None}
    for q, name in ((0.5, "p50_ms"), (0.99, "p99_ms")):
        for bound, cumulative in buckets:
            if total and cumulative >= q * total:
                out[name] = bound * 1000
                break
    return out


def hops(bench: Bench) -> dict[str, Any]:
    """One broker hop, as the processor's input consumer and as the reader fetch."""
    topic = f"{bench.run_id}.hop"
    bench.create_topics([topic])
    out: dict[str, Any] = {}
    for who, wait in _FETCH_WAITS.items():
        worker = Worker(
            f"hop-{who}",
            sys.executable,
            "hop",
            {"bootstrap": bench.bootstrap, "topic": topic, "kafka": bench.kafka,
             "fetch_wait_ms": wait},
            bench.logs / f"hop-{who}.log",
        )  # fmt: skip
        try:
            result = worker.wait("result", 120)
        finally:
            worker.stop()
        out[who] = {"fetch_wait_ms": wait, "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]}
    return {"hops": out}
