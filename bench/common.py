"""What the benchmark's parts share: paths, the step error, small formatting helpers, the
Kafka settings every peer gets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

# Same consumer-group timing for every peer (the passthrough and Quix peers set these too):
# Tansu's first join waits out the rebalance timeout (docs/testing.md#brokers-for-tests).
GROUP_KAFKA: dict[str, Any] = {"session.timeout.ms": 6000, "max.poll.interval.ms": 10000}


# noida-db 0.2.3 ignores fetch.max.bytes and max.partition.fetch.bytes: a fetch from offset 0
# returns everything up to the end of every partition asked for. librdkafka refuses responses
# over receive.message.max.bytes (default 100 MB) and retries the same fetch forever, so any
# topic over 100 MB (the 100k-record input, a 1M-key changelog) could not be read at all.
# Every peer gets the largest value librdkafka accepts on noida; Kafka needs nothing.
NOIDA_RECEIVE_MAX = 2_147_483_647


class StepError(Exception):
    """A step could not produce its figure; the message says why."""


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )
