"""`run`'s progress line: every `progress_interval_s` one INFO line with what the committed
batches did since the last line (records/s, events by type, dead letters, skipped), the
consumer lag and the transactions.

It observes committed batches (the loop's `on_commit` hook) and reads the lag gauge and the
transaction counter the loop already keeps; nothing is counted per record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from processor.metrics import Metrics
from processor.task import Tallies

log = logging.getLogger(__name__)


class ProgressLog:
    def __init__(
        self,
        metrics: Metrics,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] = log.info,
    ) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.clock = clock
        self.emit = emit
        self.lock = threading.Lock()
        self.records = 0
        self.events: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.commits = 0
        self.since = clock()
        self.aborts_before = self._aborts()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="progress", daemon=True)

    def observe(self, tallies: Tallies) -> None:
        """One committed batch (called on the loop's thread)."""
        with self.lock:
            self.records += tallies.records
            for (_, event_type), n in tallies.emitted.items():
                self.events[event_type] += n
            self.dead.update(tallies.dead)
            self.skipped.update(tallies.skipped)
            self.commits += 1

    def line(self) -> str:
        """What happened since the last line; starts the next interval."""
        now = self.clock()
        with self.lock:
            records, events, dead, skipped, commits = (
                self.records,
                self.events,
                self.dead,
                self.skipped,
                self.commits,
            )
            self.records, self.commits = 0, 0
            self.events, self.dead, self.skipped = Counter(), Counter(), Counter()
            seconds, self.since = max(now - self.since, 1e-9), now
        aborts_now = self._aborts()
        aborts, self.aborts_before = aborts_now - self.aborts_before, aborts_now
        span = f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"
        return (
            f"progress: {records:,} records in {span} s ({records / seconds:,.0f}/s); "
            f"events: {_counts(events)}; dead letters: {_counts(dead)}; "
            f"skipped: {_counts(skipped)}; lag: {self._lag()}; "
            f"{commits} commits, {aborts:.0f} aborts"
        )

    def start(self) -> ProgressLog:
        if self.interval_s > 0:
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.emit(self.line())

    def _lag(self) -> str:
        samples = [s.value for family in self.metrics.lag.collect() for s in family.samples]
        return f"{sum(samples):,.0f} records" if samples else "unknown (no partition consumed yet)"

    def _aborts(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "tmf_events_transactions_total", {"outcome": "aborted"}
        )
        return value or 0.0


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))
