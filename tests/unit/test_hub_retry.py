"""Hub retry schedule and pausing (processor/hub/retry.py): time is an argument, no sleeps."""

from __future__ import annotations

import pytest

from processor.hub.retry import Failures, RetryPolicy, backoff_s

POLICY = RetryPolicy(initial_s=0.5, max_s=8.0, pause_after_s=60.0, probe_interval_s=30.0)


@pytest.mark.parametrize(
    ("retry", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (200, 8.0)]
)
def test_backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half(
    retry: int, ceiling: float
) -> None:
    assert backoff_s(retry, 0.5, 8.0, 0.0) == ceiling / 2
    assert backoff_s(retry, 0.5, 8.0, 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert ceiling / 2 <= backoff_s(retry, 0.5, 8.0, 0.5) <= ceiling


def test_failures_back_off_then_pause_after_the_configured_time() -> None:
    f = Failures(POLICY)
    now = 1000.0
    delays = []
    while True:
        step = f.failed(now, rand=0.0)
        if step.paused_now:
            break
        assert not f.paused
        delays.append(step.delay_s)
        now += step.delay_s
    assert delays[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert now - 1000.0 >= POLICY.pause_after_s  # paused only after a full minute of failing
    assert now - 1000.0 < POLICY.pause_after_s + POLICY.max_s
    assert f.paused and step.delay_s == POLICY.probe_interval_s
    # Paused: probes at the probe interval, "paused now" only once.
    again = f.failed(now + 30, rand=0.9)
    assert not again.paused_now and again.delay_s == POLICY.probe_interval_s


def test_the_last_backoff_does_not_overshoot_the_pause() -> None:
    f = Failures(RetryPolicy(initial_s=10.0, max_s=100.0, pause_after_s=12.0, probe_interval_s=5))
    assert f.failed(0.0, rand=0.0).delay_s == 5.0  # half of 10 s
    step = f.failed(5.0, rand=0.99)  # would be ~20 s; the pause is due in 7 s
    assert step.delay_s == pytest.approx(7.0)
    assert f.failed(12.0, rand=0.0).paused_now


def test_success_ends_the_streak_and_reports_a_resume() -> None:
    f = Failures(POLICY)
    f.failed(0.0, 0.0)
    assert f.succeeded() is False  # not paused: nothing to resume
    assert f.since is None and f.retries == 0
    f.failed(100.0, 0.0)
    assert f.failed(100.0 + 61, 0.0).paused_now
    assert f.succeeded() is True
    assert not f.paused
    # A new streak starts from scratch: no pause before another full minute.
    assert not f.failed(200.0, 0.0).paused_now
    assert f.failed(200.0 + 59, 0.0).paused_now is False


def test_pause_after_zero_pauses_at_the_first_failure() -> None:
    f = Failures(RetryPolicy(initial_s=1, max_s=2, pause_after_s=0, probe_interval_s=3))
    step = f.failed(5.0, 0.0)
    assert step.paused_now and step.delay_s == 3
