"""The hub's HTTP routes: TMF `registerListener` / `unregisterListener` (and `GET /hub/{id}`).

For each entity type this hub serves (`entity_types`), under
`/tmf-api/serviceInventoryManagement/v4` and `/tmf-api/resourceInventoryManagement/v4`
(and the `v5` paths when `tmf_version` is v5):

- `POST .../hub` with `EventSubscriptionInput {callback, query}` (v5: `Hub_FVO`): 201 with
  `EventSubscription {id, callback, query}` (v5: `Hub` with `@type`, `href`) and a
  `Location` header; 400 with a problem body for an invalid body, query or callback;
- `GET .../hub/{id}`: the subscription, plus `delivery` (state `active` or `paused`, since
  when, the last error) as this hub last stored it; 404 for an unknown id;
- `DELETE .../hub/{id}`: 204; 404 for an unknown id.

Request bodies are validated against the JSON Schemas shipped in `schemas/hub/`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote

import orjson
import uuid6
from confluent_kafka import KafkaException

from processor.config import Settings
from processor.http import Answer, Request, json_response, problem
from processor.hub.callbacks import CallbackError, check_callback
from processor.hub.model import Position, Subscription
from processor.hub.parts import HubParts
from processor.hub.query import QueryError, parse_query
from processor.schemas import event_names, schema_dir
from processor.tmf import API_NAME

log = logging.getLogger(__name__)

#: The schema a request body must satisfy, and the one answers satisfy, per API version.
INPUT_SCHEMA = {"v4": "EventSubscriptionInput", "v5": "Hub_FVO"}
OUTPUT_SCHEMA = {"v4": "EventSubscription", "v5": "Hub"}


@dataclass(frozen=True, slots=True)
class Api:
    entity_type: str
    version: str  # the API version of the path (v4 or v5)
    base: str  # e.g. /tmf-api/serviceInventoryManagement/v4


def hub_apis(settings: Settings) -> list[Api]:
    versions = ["v4"] if settings.tmf_version == "v4" else ["v4", "v5"]
    return [
        Api(entity, version, f"/tmf-api/{API_NAME[entity]}/{version}")
        for entity in settings.entity_types
        for version in versions
    ]


def schema_path(version: str, name: str) -> str:
    return str(schema_dir() / "hub" / version / f"{name}.json")


@cache
def _validator(version: str, name: str) -> Any:
    from jsonschema import Draft202012Validator

    with open(schema_path(version, name), "rb") as f:
        return Draft202012Validator(orjson.loads(f.read()))


def schema_problem(version: str, name: str, document: Any) -> str | None:
    """Why `document` does not satisfy the shipped schema `name` (None when it does)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(version, name).iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def subscription_document(api: Api, sub: Subscription) -> dict[str, Any]:
    """The TMF answer for a subscription (EventSubscription in v4, Hub in v5)."""
    doc: dict[str, Any] = {}
    if api.version == "v5":
        doc["@type"] = "Hub"
    doc["id"] = sub.id
    if api.version == "v5":
        doc["href"] = f"{api.base}/hub/{sub.id}"
    doc["callback"] = sub.callback
    if sub.query is not None:
        doc["query"] = sub.query
    return doc


def delivery_document(positions: Mapping[tuple[str, int], Position]) -> dict[str, Any]:
    """A subscription's delivery state, from its stored positions."""
    paused = [p for p in positions.values() if p.paused]
    doc: dict[str, Any] = {"state": "paused" if paused else "active"}
    since = [p.paused_since_ms for p in paused if p.paused_since_ms is not None]
    if since:
        doc["pausedSince"] = _rfc3339(min(since))
    errors = sorted(positions.values(), key=lambda p: p.updated_ms)
    last = next((p.last_error for p in reversed(errors) if p.last_error), None)
    if last is not None:
        doc["lastError"] = last
    return doc


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class HubRoutes:
    """The request handler given to `processor.http.HttpServer(routes=...)`."""

    def __init__(
        self,
        parts: HubParts,
        partitions: Mapping[str, int],
        forget: Callable[[str], None],
        poke: Callable[[], None],
    ) -> None:
        self.parts = parts
        self.partitions = partitions
        self.forget = forget  # stops this replica's delivery of a subscription at once
        self.poke = poke  # tells the dispatcher a subscription arrived
        self.apis = hub_apis(parts.settings)

    def __call__(self, request: Request) -> Answer:
        for api in self.apis:
            hub = api.base + "/hub"
            if request.path in (hub, hub + "/"):
                if request.method == "POST":
                    return self.register(api, request.body)
                return _not_allowed(request.method, "POST")
            if request.path.startswith(hub + "/"):
                sub_id = unquote(request.path[len(hub) + 1 :])
                if request.method == "GET":
                    return self.show(api, sub_id)
                if request.method == "DELETE":
                    return self.unregister(api, sub_id)
                return _not_allowed(request.method, "GET, DELETE")
        if request.method != "GET":
            return _not_allowed(request.method, "GET")
        return Answer.of(problem(404, "Not Found", f"no resource at {request.path}"))

    # -- POST /hub -------------------------------------------------------------------------

    def register(self, api: Api, body: bytes) -> Answer:
        answer = self._register(api, body)
        outcome = "created" if answer.status == 201 else str(answer.status)
        self.parts.metrics.registrations.labels("register", outcome).inc()
        return answer

    def _register(self, api: Api, body: bytes) -> Answer:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _bad_request("the body is not JSON")
        reason = schema_problem(api.version, INPUT_SCHEMA[api.version], document)
        if reason is not None:
            return _bad_request(f"not an {INPUT_SCHEMA[api.version]}: {reason}")
        callback: str = document["callback"]
        query: str | None = document.get("query")
        if query is not None and not query.strip():
            query = None
        names = event_names(api.entity_type, self.parts.settings.tmf_version)
        try:
            parse_query(query, api.entity_type, names)
        except QueryError as exc:
            return _bad_request(f"query: {exc}")
        try:
            check_callback(callback, self.parts.allowed, self.parts.resolve)
        except CallbackError as exc:
            return _bad_request(str(exc))
        if len(self.parts.store.all_subscriptions()) >= self.parts.settings.hub_max_subscriptions:
            return Answer.of(
                problem(
                    403,
                    "Forbidden",
                    f"this hub holds its maximum of {self.parts.settings.hub_max_subscriptions} "
                    "subscriptions (hub_max_subscriptions)",
                )
            )
        topic = self.parts.settings.topic_for(api.entity_type)
        # Time-ordered ids: a listing of the hub topic reads in registration order.
        sub_id = str(uuid6.uuid7())
        try:
            start = self.parts.store.end_offsets(topic, self.partitions[topic])
            sub = Subscription(
                id=sub_id,
                entity_type=api.entity_type,
                api_version=api.version,
                callback=callback,
                query=query,
                topic=topic,
                start=start,
                created_ms=int(time.time() * 1000),
            )
            self.parts.store.put_subscription(sub)
        except KafkaException as exc:
            log.warning("registration failed: %s", exc)
            return Answer.of(
                problem(503, "Service Unavailable", "Kafka did not take the subscription")
            )
        self.poke()
        log.info(
            "subscription %s registered: %s events to %s (query %r)",
            sub_id,
            api.entity_type,
            callback,
            query,
        )
        return Answer.of(
            json_response(201, subscription_document(api, sub)),
            ("Location", f"{api.base}/hub/{sub_id}"),
        )

    # -- GET /hub/{id} ---------------------------------------------------------------------

    def show(self, api: Api, sub_id: str) -> Answer:
        sub = self._find(api, sub_id)
        if sub is None:
            return _unknown(sub_id)
        doc = subscription_document(api, sub)
        doc["delivery"] = delivery_document(self.parts.store.positions_of(sub_id))
        return Answer.of(json_response(200, doc))

    # -- DELETE /hub/{id} ------------------------------------------------------------------

    def unregister(self, api: Api, sub_id: str) -> Answer:
        sub = self._find(api, sub_id)
        if sub is None:
            self.parts.metrics.registrations.labels("unregister", "404").inc()
            return _unknown(sub_id)
        try:
            self.parts.store.delete_subscription(sub_id)
        except KafkaException as exc:
            log.warning("unregistration failed: %s", exc)
            return Answer.of(
                problem(503, "Service Unavailable", "Kafka did not take the unregistration")
            )
        self.forget(sub_id)
        self.parts.metrics.registrations.labels("unregister", "deleted").inc()
        log.info("subscription %s unregistered", sub_id)
        return Answer(204)

    def _find(self, api: Api, sub_id: str) -> Subscription | None:
        sub = self.parts.store.subscription(sub_id)
        if sub is None or sub.entity_type != api.entity_type:
            return None
        return sub


def _bad_request(detail: str) -> Answer:
    return Answer.of(problem(400, "Bad Request", detail))


def _unknown(sub_id: str) -> Answer:
    return Answer.of(problem(404, "Not Found", f"no subscription with id {sub_id!r}"))


def _not_allowed(method: str, allow: str) -> Answer:
    return Answer.of(
        problem(405, "Method Not Allowed", f"{method} is not served here"), ("Allow", allow)
    )
