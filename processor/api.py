"""`tmf-events api`: the latest event(s) of an instance, served from the changelog.

A read-only, materialised view of every changelog partition (read_committed), kept up to
date by a background consumer; it needs no processor and scales on its own behind any load
balancer. Values stay Avro-encoded until asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from processor import clients
from processor.config import Settings
from processor.connect import call_failed
from processor.errors import (
    CommandError,
    KafkaFatalError,
    KafkaUnreachableError,
    kafka_text,
    unreachable,
)
from processor.http import Response, json_response, problem
from processor.logs import Throttle
from processor.metrics import ApiMetrics
from processor.state.codec import decode_state
from processor.state.model import StoredEvent

log = logging.getLogger(__name__)
# The client's errors repeat while a broker is down: one line per kind per interval.
client_log = logging.getLogger(f"{__name__}.changelog")
client_log.addFilter(Throttle())

CLOUDEVENTS_JSON = "application/cloudevents+json"
MAX_LIMIT = 100


# Follower restarts in a row (each after an error it raised) before the API gives up.
FOLLOWER_RETRIES = 5
# How often an idle follower checks that a broker still answers.
CHECK_INTERVAL_S = 5.0


class ChangelogView:
    """Every key's latest state, followed from the changelog topic.

    The follower survives what it can: a failed follower is restarted from where it stopped
    (FOLLOWER_RETRIES times in a row), a broker outage is waited out for
    `connect_timeout_ms`. Beyond that it gives up: `failure` says why (exit 4 when Kafka is
    unreachable, else 3) and `dead` is set, so that the process exits and an orchestrator
    restarts it instead of a replica serving an ever older view.
    """

    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ApiMetrics()
        self.values: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.caught_up: set[int] = set()
        self.partitions: list[int] = []
        self.positions: dict[int, int] = {}  # partition -> next offset to read
        self.stop_event = threading.Event()
        self.heartbeat = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="changelog-view", daemon=True)
        self.failure: CommandError | None = None
        self.dead = threading.Event()
        # Seconds before the n-th restart of a failed follower in a row.
        self.retry_delay: Callable[[int], float] = lambda n: min(2.0**n, 30.0)
        self.unreachable_since: float | None = None

    def start(self) -> ChangelogView:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def ready(self) -> tuple[bool, str]:
        if self.failure is not None:
            return False, f"changelog follower stopped: {self.failure.what}"
        if not self.partitions:
            return False, "waiting for the changelog topic's metadata"
        missing = sorted(set(self.partitions) - self.caught_up)
        if missing:
            return False, f"reading partitions {missing}"
        return True, f"{len(self.values)} instances"

    def health(self) -> tuple[bool, str]:
        if self.failure is not None:
            return False, f"changelog follower stopped: {self.failure.what}"
        idle = time.monotonic() - self.heartbeat
        return (idle < 60, f"follower last turned {idle:.0f} s ago")

    def get(self, key: str) -> bytes | None:
        with self.lock:
            return self.values.get(key)

    def _run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            progress = len(self.positions), sum(self.positions.values())
            try:
                self._follow()
                return
            except Exception as exc:
                failure = self._classify(exc)
                if (len(self.positions), sum(self.positions.values())) != progress:
                    failures = 0  # it did read something: a new run of failures starts
                failures += 1
                # _lost raises KafkaUnreachableError once the brokers were gone for
                # connect_timeout_ms: waiting longer would not help.
                if isinstance(exc, KafkaUnreachableError) or failures > FOLLOWER_RETRIES:
                    log.error(
                        "changelog follower gave up: %s",
                        failure.what,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                    self.failure = failure
                    self.metrics.ready.set(0)
                    self.dead.set()
                    return
                delay = self.retry_delay(failures)
                log.warning(
                    "changelog follower failed (%s); restarting it in %.0f s (%d of %d)",
                    failure.what,
                    delay,
                    failures,
                    FOLLOWER_RETRIES,
                )
                self.stop_event.wait(delay)

    def _classify(self, exc: Exception) -> CommandError:
        if isinstance(exc, CommandError):
            return exc
        if isinstance(exc, KafkaException):
            return call_failed(self.settings, exc)
        return KafkaFatalError(f"changelog follower failed: {type(exc).__name__}: {exc}")

    def _check(self, consumer: Consumer) -> None:
        """Whether a broker still answers (an idle follower hears nothing either way)."""
        s = self.settings
        try:
            consumer.list_topics(
                s.changelog_topic, timeout=min(CHECK_INTERVAL_S, s.connect_timeout_ms / 1000)
            )
        except KafkaException as exc:
            self._lost(exc)
            return
        self.unreachable_since = None

    def _lost(self, exc: KafkaException) -> None:
        """No broker answered; raise KafkaUnreachableError once none has for connect_timeout_ms."""
        s = self.settings
        now = time.monotonic()
        if self.unreachable_since is None:
            self.unreachable_since = now
            log.warning("changelog: no broker answers (%s)", kafka_text(exc))
        bound = s.connect_timeout_ms / 1000
        if now - self.unreachable_since >= bound:
            raise unreachable(
                s.bootstrap_servers,
                s.origin("bootstrap_servers"),
                bound,
                "the changelog follower lost its brokers",
            ) from exc

    def _follow(self) -> None:
        s = self.settings
        consumer = Consumer(clients.committed_reader(s, "api"))
        try:
            while not self.stop_event.is_set() and not self.partitions:
                self.heartbeat = time.monotonic()
                try:
                    meta = consumer.list_topics(s.changelog_topic, timeout=CHECK_INTERVAL_S)
                except KafkaException as exc:
                    self._lost(exc)
                    continue
                self.unreachable_since = None
                topic = meta.topics.get(s.changelog_topic)
                if topic is not None and topic.error is None and topic.partitions:
                    self.partitions = sorted(topic.partitions)
                else:
                    self.stop_event.wait(1)
            consumer.assign(
                [
                    TopicPartition(s.changelog_topic, p, self.positions.get(p, OFFSET_BEGINNING))
                    for p in self.partitions
                ]
            )
            next_check = time.monotonic() + CHECK_INTERVAL_S
            while not self.stop_event.is_set():
                self.heartbeat = time.monotonic()
                msgs = consumer.consume(10_000, 0.2)
                self._apply(msgs)
                if self.heartbeat >= next_check or self.unreachable_since is not None:
                    self._check(consumer)
                    next_check = time.monotonic() + CHECK_INTERVAL_S
                self.metrics.ready.set(1 if self.ready()[0] else 0)
                self.metrics.instances.set(len(self.values))
        finally:
            self.metrics.ready.set(0)
            consumer.close()

    def _apply(self, msgs: list[Message]) -> None:
        updates: dict[str, bytes | None] = {}
        for msg in msgs:
            err = msg.error()
            partition = msg.partition() or 0
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.caught_up.add(partition)
                elif err.fatal():
                    raise KafkaException(err)
                else:
                    client_log.warning("changelog: %s", err.str())
                continue
            self.positions[partition] = (msg.offset() or 0) + 1
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
        ready, reason = self.view.ready()
        if not ready:
            # A 404 now would tell the client something false: the instance may be in the
            # part of the changelog not read yet.
            return problem(503, "Service Unavailable", f"not ready ({reason}); retry later")
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
