"""`tmf-events hub` as a child process for the integration tests, and a client for its API."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.http_client import call
from tests.processes import CliProcess

SERVICE_HUB = "/tmf-api/serviceInventoryManagement/v4/hub"
RESOURCE_HUB = "/tmf-api/resourceInventoryManagement/v4/hub"


class HubProcess(CliProcess):
    """One hub replica; `start()` again after `kill()` restarts it on a new port."""

    command = "hub"

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body or text) of one request."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        reply = call(self.port, path, method, data, timeout=30)
        parsed = reply.body and "json" in reply.content_type
        return reply.status, reply.headers, reply.json() if parsed else reply.body

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
