"""CPU per record, for the benchmark's peers (no imports beyond the standard library: the
Quix Streams peer's own venv runs the same worker)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (every thread of it) has used, from /proc; None
    when it is gone or this is not Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU a peer (its process: the Python thread and the client's threads) and the broker
    spend per input record, from the peer's first commit to its last: both read at each
    commit. Whether the two cores were the limit shows in `cores_busy`. The kernel counts in
    clock ticks (10 ms): a window of a second reads to about 1 %."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        # (records committed, monotonic time, own CPU s, broker CPU s)
        self.first: tuple[int, float, float, float | None] | None = None
        self.last: tuple[int, float, float, float | None] | None = None

    def commit(self, records: int) -> None:
        own = cpu_seconds(os.getpid())
        broker = cpu_seconds(self.broker_pid) if self.broker_pid else None
        if own is None:
            return
        self.last = (records, time.monotonic(), own, broker)
        if self.first is None:
            self.first = self.last

    def figures(self) -> dict[str, float] | None:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        (r0, t0, own0, broker0), (r1, t1, own1, broker1) = self.first, self.last
        n, wall = r1 - r0, t1 - t0
        out = {
            "records": n,
            "wall_s": wall,
            "wall_us_per_record": wall / n * 1e6,
            "peer_us_per_record": (own1 - own0) / n * 1e6,
        }
        if broker0 is not None and broker1 is not None and wall > 0:
            out["broker_us_per_record"] = (broker1 - broker0) / n * 1e6
            out["cores_busy"] = (own1 - own0 + broker1 - broker0) / wall
        return out
