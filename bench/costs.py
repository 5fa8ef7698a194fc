"""The costs that stay, measured: what each part of the job's I/O costs per input record.

The I/O floor (bench/peers/floor.py) runs as the job does and, side by side in the same run,
once without each part: without the flush between the events and the changelog, with
changelog values that leave out the last event (kept for the query API), and without lz4
compression. Rounds alternate the variants so that the machine's drift spreads over all of
them; the median of the rounds is kept. A part's cost per record is the floor's time per
record minus the variant's (negative: the variant was not faster, within the noise).

tmf-events runs in every round too, right after the floor as the job: each round gives one
ratio of the two measured on the broker in the same state (a broker slows as the run's
topics fill, so a single floor run early in the run flatters the floor), and the median of
those ratios is the paired figure the report gives beside the single runs'.
"""

from __future__ import annotations

import statistics
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.run import Bench

# name -> (worker arguments, librdkafka settings over the run's)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "as the job": ({}, {}),
    "one flush": ({"one_flush": True}, {}),
    "changelog without the event": ({"slim_changelog": True}, {}),
    "no compression": ({}, {"compression.type": "none"}),
}
ROUNDS = 3


def costs(bench: Bench, rounds: int = ROUNDS) -> dict[str, Any]:
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    tmf: list[float] = []
    cpu: dict[str, list[dict[str, float] | None]] = {"floor": [], "tmf-events": []}
    for round_ in range(rounds):
        for i, (name, (extra, kafka)) in enumerate(VARIANTS.items()):
            app_id = f"{bench.run_id}-cost{round_}-{i}"
            args = {**bench.tmf_topics(app_id, bench.input_topic), **extra}
            if kafka:
                args["kafka"] = {**bench.kafka, **kafka}
            label = f"floor, {name} ({round_ + 1}/{rounds})"
            result = bench.throughput(label, sys.executable, "floor", app_id, args)
            rates[name].append(result["records_per_s"])
            if i == 0:
                beside = bench.tmf(label=f"({round_ + 1}/{rounds})")
                tmf.append(beside["records_per_s"])
                cpu["floor"].append(result.get("cpu"))
                cpu["tmf-events"].append(beside.get("cpu"))
    base = statistics.median(rates["as the job"])
    paired = [t / f for t, f in zip(tmf, rates["as the job"], strict=True)]
    return {
        "rounds": rounds,
        "tmf_vs_floor": {
            "tmf_records_per_s": tmf,
            "per_round": paired,
            "median": statistics.median(paired),
            "cpu": cpu,
        },
        "variants": {
            name: {
                "records_per_s": runs,
                "median": statistics.median(runs),
                "us_per_record_saved": 1e6 / base - 1e6 / statistics.median(runs),
            }
            for name, runs in rates.items()
        },
    }
