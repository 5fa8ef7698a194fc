"""The hub's HTTP routes (processor/hub/routes.py) over an in-memory store, behind the real
HTTP server: TMF shapes (validated against the shipped schemas), statuses, Location."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from processor.config import Settings, load_settings
from processor.http import HttpServer
from processor.hub.callbacks import parse_allowed_hosts
from processor.hub.metrics import HubMetrics
from processor.hub.model import Position, Subscription
from processor.hub.parts import HubParts
from processor.hub.routes import HubRoutes, delivery_document, schema_path
from tests.http_client import call
from tests.hub_process import RESOURCE_HUB, SERVICE_HUB


class MemoryStore:
    """The part of HubStore the routes use."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.positions: dict[tuple[str, str, int], Position] = {}
        self.caught_up = True

    def subscription(self, sub_id: str) -> Subscription | None:
        return self.subscriptions.get(sub_id)

    def all_subscriptions(self) -> list[Subscription]:
        return list(self.subscriptions.values())

    def positions_of(self, sub_id: str) -> dict[tuple[str, int], Position]:
        return {(t, p): v for (s, t, p), v in self.positions.items() if s == sub_id}

    def end_offsets(self, topic: str, partitions: int) -> dict[int, int]:
        return {p: 10 * (p + 1) for p in range(partitions)}

    def put_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.id] = sub

    def delete_subscription(self, sub_id: str) -> None:
        self.subscriptions.pop(sub_id)


def validator(version: str, name: str) -> Draft202012Validator:
    with open(schema_path(version, name), encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.store = MemoryStore()
        self.forgotten: list[str] = []
        self.pokes = 0
        parts = HubParts(
            settings,
            self.store,  # type: ignore[arg-type]
            HubMetrics(),
            parse_allowed_hosts(settings.hub_allowed_callback_hosts),
            lambda host, port: ["127.0.0.1"] if host == "localhost" else ["93.184.216.34"],
        )
        routes = HubRoutes(
            parts,
            {settings.service_topic: 2, settings.resource_topic: 3},
            forget=self.forgotten.append,
            poke=self._poke,
        )
        self.server = HttpServer(
            0,
            CollectorRegistry(),
            lambda: (True, ""),
            lambda: (True, ""),
            host="127.0.0.1",
            routes=routes,
        ).start()

    def _poke(self) -> None:
        self.pokes += 1

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        reply = call(self.server.port, path, method, data)
        return reply.status, reply.headers, reply.json() if reply.body else None


@pytest.fixture
def hub() -> Iterator[Hub]:
    h = Hub(load_settings(hub_allowed_callback_hosts=["localhost"]))
    yield h
    h.server.stop()


@pytest.fixture
def hub_v5() -> Iterator[Hub]:
    h = Hub(load_settings(tmf_version="v5"))
    yield h
    h.server.stop()


def test_register_answers_201_with_an_event_subscription_and_location(hub: Hub) -> None:
    body = {"callback": "https://listener.example/tmf", "query": "eventType=ServiceDeleteEvent"}
    assert not list(validator("v4", "EventSubscriptionInput").iter_errors(body))
    status, headers, doc = hub.call("POST", SERVICE_HUB, body)
    assert status == 201
    assert not list(validator("v4", "EventSubscription").iter_errors(doc))
    assert doc["callback"] == body["callback"] and doc["query"] == body["query"]
    assert headers["Location"] == f"{SERVICE_HUB}/{doc['id']}"
    sub = hub.store.subscriptions[doc["id"]]
    assert (sub.entity_type, sub.topic, sub.api_version) == ("service", "tmf.service.events", "v4")
    assert sub.start == {0: 10, 1: 20}  # the end of every output partition at registration
    assert hub.pokes == 1


def test_get_shows_the_subscription_and_its_delivery_state(hub: Hub) -> None:
    _, _, doc = hub.call("POST", RESOURCE_HUB, {"callback": "http://localhost:9/cb"})
    assert "query" not in doc
    status, _, shown = hub.call("GET", f"{RESOURCE_HUB}/{doc['id']}")
    assert status == 200
    assert not list(validator("v4", "EventSubscription").iter_errors(shown))
    assert shown["delivery"] == {"state": "active"}
    hub.store.positions[(doc["id"], "tmf.resource.events", 1)] = Position(
        5, paused=True, paused_since_ms=1_767_261_600_000, last_error="refused", updated_ms=2
    )
    _, _, shown = hub.call("GET", f"{RESOURCE_HUB}/{doc['id']}")
    assert shown["delivery"] == {
        "state": "paused",
        "pausedSince": "2026-01-01T10:00:00.000Z",
        "lastError": "refused",
    }
    # A service hub does not know a resource subscription.
    assert hub.call("GET", f"{SERVICE_HUB}/{doc['id']}")[0] == 404


def test_delete_answers_204_then_404(hub: Hub) -> None:
    _, _, doc = hub.call("POST", SERVICE_HUB, {"callback": "http://localhost:9/cb"})
    status, _, body = hub.call("DELETE", f"{SERVICE_HUB}/{doc['id']}")
    assert (status, body) == (204, None)
    assert hub.forgotten == [doc["id"]]
    assert hub.call("DELETE", f"{SERVICE_HUB}/{doc['id']}")[0] == 404
    assert hub.call("GET", f"{SERVICE_HUB}/{doc['id']}")[0] == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not an EventSubscriptionInput"),
        (b"{}", "'callback' is a required property"),
        (b'{"callback": 7}', "callback: 7 is not of type 'string'"),
        (b'{"callback": ""}', "callback"),
        (b'{"callback": "http://a.example", "query": 3}', "query"),
        (b'{"callback": "ftp://a.example"}', "scheme must be http or https"),
        (b'{"callback": "http://10.0.0.1/x"}', "private address"),
        (b'{"callback": "http://169.254.169.254/"}', "link-local address"),
        (b'{"callback": "http://a.example", "query": "eventType=Nope"}', "query: eventType Nope"),
        (b'{"callback": "http://a.example", "query": "fields=state"}', "not supported"),
    ],
)
def test_bad_requests_get_400_problem_details(hub: Hub, body: bytes, detail: str) -> None:
    status, headers, doc = hub.call("POST", SERVICE_HUB, raw=body)
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert doc["status"] == 400 and detail in doc["detail"]
    assert hub.store.subscriptions == {}


def test_unknown_paths_and_methods(hub: Hub) -> None:
    assert hub.call("GET", f"{SERVICE_HUB}/nope")[0] == 404
    assert hub.call("DELETE", f"{SERVICE_HUB}/nope")[0] == 404
    status, headers, _ = hub.call("GET", SERVICE_HUB)
    assert (status, headers["Allow"]) == (405, "POST")
    assert hub.call("PATCH", f"{SERVICE_HUB}/x", raw=b"{}")[0] == 405
    assert hub.call("POST", "/tmf-api/serviceInventoryManagement/v5/hub", raw=b"{}")[0] == 405
    assert hub.call("GET", "/tmf-api/serviceInventoryManagement/v5/hub/x")[0] == 404


def test_the_number_of_subscriptions_is_bounded() -> None:
    h = Hub(load_settings(hub_max_subscriptions=1))
    try:
        assert h.call("POST", SERVICE_HUB, {"callback": "http://a.example"})[0] == 201
        status, _, doc = h.call("POST", SERVICE_HUB, {"callback": "http://a.example"})
        assert status == 403 and "hub_max_subscriptions" in doc["detail"]
    finally:
        h.server.stop()


def test_v5_paths_answer_hub_resources(hub_v5: Hub) -> None:
    base = "/tmf-api/serviceInventoryManagement/v5/hub"
    body = {
        "@type": "Hub_FVO",
        "callback": "https://l.example/cb",
        "query": "eventType=ServiceOperatingStatusChangeEvent",
    }
    assert not list(validator("v5", "Hub_FVO").iter_errors(body))
    status, headers, doc = hub_v5.call("POST", base, body)
    assert status == 201
    assert not list(validator("v5", "Hub").iter_errors(doc))
    assert doc["href"] == headers["Location"] == f"{base}/{doc['id']}"
    assert doc["@type"] == "Hub"
    status, _, shown = hub_v5.call("GET", f"{base}/{doc['id']}")
    assert status == 200 and not list(validator("v5", "Hub").iter_errors(shown))
    # v4 paths stay served next to v5 (they answer the v4 shape).
    status, _, v4 = hub_v5.call("POST", SERVICE_HUB, {"callback": "https://l.example/cb"})
    assert status == 201 and "href" not in v4 and "@type" not in v4


def test_delivery_document_names_the_latest_error() -> None:
    doc = delivery_document(
        {
            ("t", 0): Position(1, last_error="old", updated_ms=1),
            ("t", 1): Position(1, last_error="new", updated_ms=2),
        }
    )
    assert doc == {"state": "active", "lastError": "new"}
