"""`tmf-events api`: the latest event(s) of an instance, served from the changelog.

A read-only, materialised view of every changelog partition (read_committed), kept up to
date by a background consumer; it needs no processor and scales on its own behind any load
balancer. Values stay Avro-encoded until asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from processor import clients
from processor.config import Settings
from processor.http import Response, json_response, problem
from processor.metrics import ApiMetrics
from processor.state.codec import decode_state
from processor.state.model import StoredEvent

log = logging.getLogger(__name__)

CLOUDEVENTS_JSON = "application/cloudevents+json"
MAX_LIMIT = 100


class ChangelogView:
    """Every key's latest state, followed from the changelog topic."""

    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ApiMetrics()
        self.values: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.caught_up: set[int] = set()
        self.partitions: list[int] = []
        self.stop_event = threading.Event()
        self.heartbeat = time.monotonic()
        self.thread = threading.Thread(target=self._follow, name="changelog-view", daemon=True)
        self.error: str | None = None

    def start(self) -> ChangelogView:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)

    def ready(self) -> tuple[bool, str]:
        if self.error is not None:
            return False, self.error
        if not self.partitions:
            return False, "waiting for the changelog topic's metadata"
        missing = sorted(set(self.partitions) - self.caught_up)
        if missing:
            return False, f"reading partitions {missing}"
        return True, f"{len(self.values)} instances"

    def health(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.heartbeat
        return (idle < 60, f"follower last turned {idle:.0f} s ago")

    def get(self, key: str) -> bytes | None:
        with self.lock:
            return self.values.get(key)

    def _follow(self) -> None:
        s = self.settings
        consumer = Consumer(clients.committed_reader(s, "api"))
        try:
            while not self.stop_event.is_set() and not self.partitions:
                self.heartbeat = time.monotonic()
                meta = consumer.list_topics(s.changelog_topic, timeout=5)
                topic = meta.topics.get(s.changelog_topic)
                if topic is not None and topic.error is None and topic.partitions:
                    self.partitions = sorted(topic.partitions)
                else:
                    self.stop_event.wait(1)
            consumer.assign(
                [TopicPartition(s.changelog_topic, p, OFFSET_BEGINNING) for p in self.partitions]
            )
            while not self.stop_event.is_set():
                self.heartbeat = time.monotonic()
                msgs = consumer.consume(10_000, 0.2)
                updates: dict[str, bytes | None] = {}
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self.caught_up.add(msg.partition() or 0)
                        else:
                            log.warning("changelog: %s", err.str())
                        continue
                    key = msg.key()
                    if key is not None:
                        updates[key.decode("utf-8", "replace")] = msg.value()
                if updates:
                    with self.lock:
                        for k, v in updates.items():
                            if v is None:
                                self.values.pop(k, None)
                            else:
                                self.values[k] = v
                self.metrics.ready.set(1 if self.ready()[0] else 0)
                self.metrics.instances.set(len(self.values))
        except Exception as exc:  # keep serving what we have; /readyz says why
            log.exception("changelog follower stopped")
            self.error = f"changelog follower stopped: {exc}"
        finally:
            self.metrics.ready.set(0)
            consumer.close()


class Api:
    """The HTTP routes of the domain API (see `openapi.json` beside this module)."""

    def __init__(self, view: ChangelogView) -> None:
        self.view = view

    def __call__(self, path: str, query: dict[str, list[str]]) -> Response:
        if path in ("/openapi.json", "/openapi"):
            return 200, "application/json", openapi_document()
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "instances":
            return problem(404, "Not Found", f"no resource at {path}")
        key = unquote(parts[1])
        rest = parts[2:]
        if rest not in ([], ["events"], ["events", "latest"]):
            return problem(404, "Not Found", f"no resource at {path}")
        raw = self.view.get(key)
        if raw is None:
            return problem(404, "Not Found", f"no instance with id {key!r}")
        state = decode_state(raw)
        if rest == []:
            return json_response(
                200,
                {
                    "id": key,
                    "entityType": state.entity_type,
                    "version": state.version,
                    "deleted": state.deleted,
                    "lastEvent": {
                        "id": state.last_event_id,
                        "type": state.last_event_type,
                        "time": state.last_event_time,
                    },
                },
            )
        if rest == ["events", "latest"]:
            if not state.events:
                return problem(404, "Not Found", f"no event stored for {key!r}")
            return 200, CLOUDEVENTS_JSON, state.events[0].cloudevent_bytes
        try:
            limit = int(query.get("limit", ["1"])[0])
        except ValueError:
            return problem(400, "Bad Request", "limit must be an integer")
        if not 1 <= limit <= MAX_LIMIT:
            return problem(400, "Bad Request", f"limit must be between 1 and {MAX_LIMIT}")
        events = [_event_json(e) for e in state.events[:limit]]
        return json_response(200, {"id": key, "events": events})


def _event_json(event: StoredEvent) -> Any:
    return orjson.Fragment(event.cloudevent_bytes)


def openapi_document() -> bytes:
    return (Path(__file__).parent / "openapi.json").read_bytes()
