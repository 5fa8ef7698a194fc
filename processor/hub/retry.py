"""When to try a failing listener again, and when to pause it (pure: time is an argument).

A failed delivery is retried after an exponential backoff with jitter: the n-th retry waits
between half and all of `min(max, initial * 2**(n-1))`, so replicas and subscriptions that
failed together do not retry in step. After `pause_after` of continuous failure the
subscription is paused: it is then probed every `probe_interval` with the same event, and
the first success resumes it where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float
    max_s: float
    pause_after_s: float
    probe_interval_s: float


def backoff_s(retry: int, initial_s: float, max_s: float, rand: float) -> float:
    """The wait before retry number `retry` (1 = the first retry); `rand` in [0, 1)."""
    ceiling = min(max_s, initial_s * 2.0 ** min(max(retry - 1, 0), 62))
    return ceiling / 2 + ceiling / 2 * rand


@dataclass(frozen=True, slots=True)
class Next:
    """What to do after a failure: wait `delay_s`, then try again."""

    delay_s: float
    paused_now: bool  # this failure paused the subscription


@dataclass(slots=True)
class Failures:
    """The failure streak of one subscription."""

    policy: RetryPolicy
    since: float | None = None  # time of the first failure of the streak
    retries: int = 0
    paused: bool = False

    def failed(self, now: float, rand: float) -> Next:
        if self.since is None:
            self.since = now
        self.retries += 1
        paused_now = False
        if not self.paused and now - self.since >= self.policy.pause_after_s:
            self.paused = paused_now = True
        if self.paused:
            return Next(self.policy.probe_interval_s, paused_now)
        delay = backoff_s(self.retries, self.policy.initial_s, self.policy.max_s, rand)
        # Never sleep past the moment the subscription is due to pause.
        due = self.since + self.policy.pause_after_s - now
        return Next(max(0.0, min(delay, due)) if due > 0 else delay, False)

    def succeeded(self) -> bool:
        """Ends the streak; True when it resumes a paused subscription."""
        resumed = self.paused
        self.since, self.retries, self.paused = None, 0, False
        return resumed
