"""Core benchmark: decode + decide + render + encode on synthetic records, one core, no Kafka.

    python bench/core.py [--records 100000] [--keys 10000] [--json results.json]

Prints a table and records/s. The records are generated (seeded) before the clock starts;
the measured loop is what `run` does minus the Kafka calls. Three paths over the same records:
"C batch" as the processor runs them (consumed messages through Task.take, the C engine's
batch path, a commit every `max_batch` records), "C" one record at a time through
Task.process with the C path, and "Python", the reference path.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' message double

import orjson
from rich.console import Console
from rich.progress import track
from rich.table import Table

from processor import native
from processor.config import Settings
from processor.dev.synthetic import Generator, Mix
from processor.messages import OutMessage
from processor.records import InputRecord
from processor.task import new_task
from tests.fake_kafka import FakeMessage

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


def run(
    records: list[InputRecord], settings: Settings, native: bool
) -> tuple[float, Counter[str], float]:
    """Seconds, outcomes and the share of records the C path took."""
    task = new_task(settings, native=native)
    batch = settings.max_batch
    outcomes: Counter[str] = Counter()
    gc.collect()
    gc.freeze()  # the records above are scaffolding: the processor holds no such heap
    started = time.perf_counter()
    process = task.process
    for i, record in enumerate(records, 1):
        outcomes[process(record).outcome] += 1
        if i % batch == 0:
            task.commit()
    task.commit()
    seconds = time.perf_counter() - started
    return seconds, outcomes, task.core.native_records / len(records)


def run_batch(records: list[InputRecord], settings: Settings) -> tuple[float, Counter[str], float]:
    """The same records as the loop takes them: consumed messages through Task.take (the C
    batch path), a chunk of 500 a call, committed every `max_batch` records."""
    task = new_task(settings)
    messages = [FakeMessage.of(r) for r in records]
    live = {0}
    outcomes: Counter[str] = Counter()
    batch = settings.max_batch
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    out: list[OutMessage] = []
    native = 0

    def commit() -> None:
        nonlocal native
        tallies, _ = task.commit()
        outcomes.update(tallies.skipped)
        outcomes.update(tallies.dead)
        outcomes["emit"] += len(tallies.times_ms)
        native += tallies.native

    for at in range(0, len(messages), _CHUNK):
        task.take(messages[at : at + _CHUNK], live, out, _no_errors)
        out.clear()  # produced, in the processor
        if task.records >= batch:
            commit()
    commit()
    seconds = time.perf_counter() - started
    return seconds, outcomes, native / len(records)


_CHUNK = 500  # messages a consume() call returns under load


def _no_errors(err: object) -> None:
    raise AssertionError(f"no consumer errors here: {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    console = Console()
    if not native.AVAILABLE:
        console.print("[yellow]the C fast path is not built: only the Python path runs[/]")
    records = make_records(args.records, args.keys, args.seed)
    avg = sum(len(r.value or b"") for r in records) / len(records)
    table = Table(title=f"core: {len(records):,} records, {args.keys:,} keys, {avg:,.0f} B avg")
    for col in ("tmf", "payload", "path", "seconds", "records/s", "speed-up", "C share"):
        table.add_column(col, justify="right")
    figures = []
    paths = ("C batch", "C", "Python") if native.AVAILABLE else ("Python",)
    # The synthetic instances are TMF v4 data (v4 state enums), so both runs use profile v4.
    for version, payload in (("v4", "full"), ("v4", "delta")):
        settings = Settings(
            tmf_version=version, payload=payload, private_fields=["note"], instance_id="bench"
        )
        rates: dict[str, float] = {}
        rows = []
        for path in paths:  # side by side, same records, same process
            # A plain line, not a live display: no refresh thread competes with the run.
            console.print(f"[dim]{version} {payload}, {path} path …[/]", end=" ")
            if path == "C batch":
                seconds, outcomes, share = run_batch(records, settings)
            else:
                seconds, outcomes, share = run(records, settings, native=path == "C")
            rates[path] = len(records) / seconds
            console.print(f"[dim]{rates[path]:,.0f} records/s[/]")
            figures.append(
                {
                    "profile": version,
                    "payload": payload,
                    "path": path,
                    "seconds": seconds,
                    "records_per_s": rates[path],
                    "native_share": share,
                    "outcomes": dict(outcomes),
                }
            )
            rows.append((path, seconds, share, outcomes))
        for path, seconds, share, _ in rows:
            table.add_row(
                version,
                payload,
                path,
                f"{seconds:.2f}",
                f"{rates[path]:,.0f}",
                f"{rates[path] / rates['Python']:.1f}x",
                f"{share:.0%}",
            )
        # Both paths must have decided alike (the byte-level proof is tests/unit/test_native.py).
        outcomes_of = {path: dict(outcomes) for path, _, _, outcomes in rows}
        if any(o != outcomes_of[paths[0]] for o in outcomes_of.values()):
            console.print(f"[red]the paths decided differently: {outcomes_of}[/]")
            return 1
    console.print(table)
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(figures[-1]["outcomes"].items()))
    console.print(f"outcomes, the same on every path: {counts}")
    best = max(f["records_per_s"] for f in figures if f["path"] == paths[0])
    verdict = "PASS" if best >= TARGET else "MISS"
    console.print(
        f"target {TARGET:,} records/s on one core ({paths[0]} path): {verdict} (best {best:,.0f})"
    )
    load = os.getloadavg()
    console.print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
