"""Core benchmark: decode + decide + render + encode on synthetic records, one core, no Kafka.

    python bench/core.py [--records 100000] [--keys 10000] [--json results.json]

Prints a table and records/s. The records are generated (seeded) before the clock starts;
the measured loop is exactly what `run` does per record minus the Kafka calls: Core.process,
state staging, and the Avro encoding of each changed state (the changelog write).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import track
from rich.table import Table

from processor.config import Settings
from processor.core import Core
from processor.records import InputRecord
from processor.state import encode_state
from processor.store import StateStore
from processor.synthetic import Generator, Mix

TARGET = 50_000


def make_records(count: int, keys: int, seed: int) -> list[InputRecord]:
    gen = Generator(seed=seed, keys=keys, mix=Mix(), instance_bytes=1000)
    out = []
    for offset, rec in enumerate(
        track(gen.records(count), total=count, description="generating", transient=True)
    ):
        out.append(
            InputRecord("inventory.changes", 0, offset, rec.timestamp_ms, rec.key, rec.value, [])
        )
    return out


def run(records: list[InputRecord], settings: Settings) -> tuple[float, Counter[str], int]:
    core = Core(settings)
    store = StateStore(keep_events=settings.history > 1)  # as the processor keeps it
    outcomes: Counter[str] = Counter()
    out_bytes = 0
    gc.collect()
    started = time.perf_counter()
    for record in records:
        result = core.process(record, store.get)
        outcomes[result.outcome] += 1
        for message in result.messages:
            out_bytes += len(message.value or b"")
        if result.state is not None and result.key is not None:
            encoded = encode_state(result.state)  # the changelog value
            store.put(record.partition, result.key, result.state, encoded)
            out_bytes += len(encoded)
    return time.perf_counter() - started, outcomes, out_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    console = Console()
    records = make_records(args.records, args.keys, args.seed)
    avg = sum(len(r.value or b"") for r in records) / len(records)
    table = Table(title=f"core: {len(records):,} records, {args.keys:,} keys, {avg:,.0f} B avg")
    for col in ("profile", "payload", "seconds", "records/s", "events", "unchanged"):
        table.add_column(col, justify="right")
    figures = []
    # The synthetic instances are TMF v4 data (v4 state enums), so both runs use profile v4.
    for version, payload in (("v4", "full"), ("v4", "delta")):
        settings = Settings(
            tmf_version=version, payload=payload, private_fields=["note"], instance_id="bench"
        )
        seconds, outcomes, _ = run(records, settings)
        rate = len(records) / seconds
        figures.append(
            {
                "profile": version,
                "payload": payload,
                "seconds": seconds,
                "records_per_s": rate,
                "outcomes": dict(outcomes),
            }
        )
        table.add_row(
            version,
            payload,
            f"{seconds:.2f}",
            f"{rate:,.0f}",
            f"{outcomes['emit']:,}",
            f"{outcomes['unchanged']:,}",
        )
    console.print(table)
    best = max(f["records_per_s"] for f in figures)
    verdict = "PASS" if best >= TARGET else "MISS"
    console.print(f"target {TARGET:,} records/s on one core: {verdict} (best {best:,.0f})")
    load = os.getloadavg()
    console.print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
