"""Logging setup: plain text or one JSON object per line."""

from __future__ import annotations

import logging
import sys
import time

import orjson


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class Throttle(logging.Filter):
    """Lets one copy of a repeated message through per interval and says how many it stood
    for (librdkafka retries a dead broker every few milliseconds and logs each attempt)."""

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # Connection errors differ only in timings; key on the text without digits.
        text = record.getMessage()
        key = "".join(c for c in text if not c.isdigit())[:200]
        now = time.monotonic()
        if now - self.last.get(key, -self.interval_s) < self.interval_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        if len(self.last) > 1000:
            self.last.clear()
            self.suppressed.clear()
        self.last[key] = now
        repeats = self.suppressed.pop(key, 0)
        if repeats:
            record.msg = f"{text} ({repeats} more like it since the last one were not logged)"
            record.args = None
        return True


KAFKA_LOGGER = logging.getLogger("librdkafka")
KAFKA_LOGGER.addFilter(Throttle())


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = _JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
