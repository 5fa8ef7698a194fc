"""`run`'s progress line: what the committed batches did since the last line, the lag gauge
and the transactions counter (processor/progress.py)."""

from __future__ import annotations

from collections import Counter

from processor.metrics import Metrics
from processor.progress import ProgressLog
from processor.task import Tallies


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tallies(records: int, **kinds: Counter[str]) -> Tallies:
    t = Tallies(records=records)
    t.emitted = kinds.get("emitted", Counter())
    t.dead = kinds.get("dead", Counter())
    t.skipped = kinds.get("skipped", Counter())
    return t


def test_a_line_sums_the_batches_since_the_last_one() -> None:
    metrics, clock = Metrics(), Clock()
    progress = ProgressLog(metrics, 30, clock=clock)
    metrics.lag.labels("0").set(40)
    metrics.lag.labels("1").set(2)
    metrics.transactions.labels("aborted").inc()
    progress.observe(
        _tallies(
            600,
            emitted=Counter({("service", "ServiceCreateEvent"): 3}),
            skipped=Counter({"unchanged": 2}),
        )
    )
    progress.observe(
        _tallies(
            900,
            emitted=Counter(
                {("service", "ServiceCreateEvent"): 1, ("resource", "ResourceDeleteEvent"): 2}
            ),
            dead=Counter({"invalid_json": 1}),
        )
    )
    clock.now += 30
    assert progress.line() == (
        "progress: 1,500 records in 30 s (50/s); "
        "events: ResourceDeleteEvent 2, ServiceCreateEvent 4; dead letters: invalid_json 1; "
        "skipped: unchanged 2; lag: 42 records; 2 commits, 1 aborts"
    )
    # The next line covers only what happened after this one.
    clock.now += 10
    assert progress.line() == (
        "progress: 0 records in 10 s (0/s); events: none; dead letters: none; "
        "skipped: none; lag: 42 records; 0 commits, 0 aborts"
    )


def test_lag_before_any_partition_is_consumed() -> None:
    progress = ProgressLog(Metrics(), 30, clock=Clock())
    assert "lag: unknown (no partition consumed yet)" in progress.line()


def test_the_line_is_logged_every_interval_and_zero_turns_it_off() -> None:
    import threading

    lines: list[str] = []
    logged = threading.Event()

    def emit(line: str) -> None:
        lines.append(line)
        logged.set()

    progress = ProgressLog(Metrics(), 0.05, emit=emit).start()
    try:
        assert logged.wait(10)
    finally:
        progress.stop()
    assert lines[0].startswith("progress: ")
    off = ProgressLog(Metrics(), 0, emit=emit).start()
    assert not off.thread.is_alive()
