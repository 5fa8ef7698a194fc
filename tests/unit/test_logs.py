"""Repeated client messages are summarised, not flooded (processor/logs.py)."""

from __future__ import annotations

import logging

from processor.logs import Throttle


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, text, None, None)


def test_repeats_pass_once_per_interval_and_say_how_many_they_stood_for() -> None:
    throttle = Throttle(interval_s=30)
    refused = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after {}ms)"
    first = _record(refused.format(0))
    assert throttle.filter(first)
    assert first.getMessage() == refused.format(0)
    # Differing only in digits: the same message, held back.
    assert not any(throttle.filter(_record(refused.format(n))) for n in range(1, 500))
    assert throttle.filter(_record("another message"))
    # After the interval the next copy passes, with the count of those not logged.
    throttle.last = {k: v - 31 for k, v in throttle.last.items()}
    later = _record(refused.format(7))
    assert throttle.filter(later)
    assert later.getMessage().endswith("(499 more like it since the last one were not logged)")
