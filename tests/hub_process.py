"""`tmf-events hub` as a child process for the integration tests, and a client for its API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from processor.dev.broker import death_signal_preexec, free_port
from tests.kafka_helpers import wait_until
from tests.processes import REPO, cli_env

SERVICE_HUB = "/tmf-api/serviceInventoryManagement/v4/hub"
RESOURCE_HUB = "/tmf-api/resourceInventoryManagement/v4/hub"


class HubProcess:
    """One hub replica; `start()` again after `kill()` restarts it on a new port."""

    def __init__(self, fields: Mapping[str, Any], log_path: Path) -> None:
        self.fields = dict(fields)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> HubProcess:
        self.port = free_port()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} (port {self.port}) =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processor.cli", "hub"],
                env=cli_env({**self.fields, "http_port": self.port}),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=death_signal_preexec(signal.SIGKILL),  # noqa: PLW1509 (no threads run here yet)
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60) -> HubProcess:
        def ready() -> bool:
            if not self.alive:
                return True
            try:
                return self.call("GET", "/readyz")[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout, 0.1, lambda: "hub not ready; log:\n" + self.log()[-3000:])
        assert self.alive, "hub exited before it was ready; log:\n" + self.log()[-3000:]
        return self

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body or text) of one request."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, text = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, headers, text = exc.code, dict(exc.headers), exc.read()
        ctype = headers.get("Content-Type", "")
        return status, headers, json.loads(text) if text and "json" in ctype else text

    def register(self, callback: str, query: str | None = None, hub: str = SERVICE_HUB) -> str:
        body: dict[str, Any] = {"callback": callback}
        if query is not None:
            body["query"] = query
        status, _, doc = self.call("POST", hub, body)
        assert status == 201, doc
        return str(doc["id"])

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        _, _, text = self.call("GET", "/metrics")
        total = 0.0
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
