"""Ends a replica whose processing loop is stuck, so that it gets restarted.

A client call that never returns (seen with a Kafka-compatible broker after an outage: a
transactional call that outlived its own timeout) leaves a replica alive, healthy-looking
to a process supervisor and useless. Kubernetes' liveness probe on /healthz catches that;
docker-compose and plain process supervisors only restart what exits. So the replica exits
itself, with the fatal exit code (3). Exactly-once makes that safe at any moment: whatever
transaction was open is aborted when the restarted replica fences it (docs/runtime.md#exactly-once).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

FATAL_EXIT = 3


class Watchdog:
    """Checks `health` every `interval_s` and exits the process (3) once it fails."""

    def __init__(
        self,
        health: Callable[[], tuple[bool, str]],
        interval_s: float = 5.0,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.health = health
        self.interval_s = interval_s
        self.exit_process = exit_process
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self) -> Watchdog:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self) -> None:
        while not self.stopped.wait(self.interval_s):
            ok, detail = self.health()
            if ok or self.stopped.is_set():
                continue
            message = f"the processing loop is stuck ({detail}); exiting to be restarted"
            log.critical(message)
            print(f"tmf-events run: fatal: {message}", file=sys.stderr, flush=True)
            self.exit_process(FATAL_EXIT)
            return
