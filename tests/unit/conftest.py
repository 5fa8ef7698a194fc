"""Shared fixtures of the unit tests: settings without ambient env, and a record-feeding harness.

The harness drives `processor.core.Core` exactly like the processor's shell does (look up the
state, process, store the state after), numbers offsets, advances a fake clock, and checks
every event it sees against its JSON Schema (`tests/schema_check.py`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.schema_check` is imported as a module of the repo
    sys.path.insert(0, str(ROOT))

from processor.config import Settings  # noqa: E402
from processor.messages import OutMessage, Result  # noqa: E402
from processor.records import InputRecord  # noqa: E402
from processor.state.model import State  # noqa: E402
from processor.task import new_task  # noqa: E402
from processor.timefmt import format_ms  # noqa: E402
from tests.schema_check import assert_valid_event  # noqa: E402

INPUT_TOPIC = "inventory.changes"
#: 2026-01-01T10:00:00.000Z, the harness clock's start.
T0_MS = 1_767_261_600_000
DATA_DIR = ROOT / "tests" / "data"


@pytest.fixture(scope="session", autouse=True)
def _no_ambient_settings() -> Iterator[None]:
    """TMF_EVENTS_* variables of the developer's shell must not change test results.

    Session-scoped (not function-scoped) so hypothesis tests can use it; tests that set env
    vars use `monkeypatch`, which restores them.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.upper().startswith("TMF_EVENTS_"):
                mp.delenv(name)
        yield


def make_settings(**overrides: Any) -> Settings:
    """Settings with a fixed instance id (the default is the host name)."""
    overrides.setdefault("instance_id", "unit-test")
    return Settings(**overrides)


def at(seconds: float) -> str:
    """The RFC 3339 time `seconds` after T0 (2026-01-01T10:00:00Z), as the tool writes it."""
    return format_ms(T0_MS + round(seconds * 1000))


@dataclass
class Event:
    """One emitted event message, decoded for assertions."""

    message: OutMessage
    body: dict[str, Any]

    @property
    def topic(self) -> str:
        return self.message.topic

    @property
    def key(self) -> str | None:
        return None if self.message.key is None else self.message.key.decode()

    @property
    def headers(self) -> dict[str, str]:
        return {k: v.decode() for k, v in self.message.headers if v is not None}

    @property
    def header_names(self) -> list[str]:
        return [k for k, _ in self.message.headers]

    @property
    def name(self) -> str:
        return str(self.body["eventType"])

    @property
    def payload(self) -> dict[str, Any]:
        (payload,) = self.body["event"].values()
        return dict(payload)

    @property
    def id(self) -> str:
        return self.headers["ce_id"]

    @property
    def version(self) -> int:
        return int(self.headers["ce_entityversion"])

    @property
    def previous(self) -> str | None:
        return self.headers.get("ce_previousid")


@dataclass
class Sent:
    """What one input record produced."""

    record: InputRecord
    result: Result
    events: list[Event] = field(default_factory=list)
    state: State | None = None  # the key's state after the record, when it changed

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def messages(self) -> list[OutMessage]:
        return self.result.messages

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.events]

    @property
    def reason(self) -> str | None:
        return self.result.reason

    @property
    def dead_letter(self) -> OutMessage:
        assert self.outcome == "dead_letter", f"expected a dead letter, got {self.outcome}"
        (message,) = self.result.messages
        return message

    @property
    def event(self) -> Event:
        assert len(self.events) == 1, f"expected one event, got {self.names}"
        return self.events[0]


_AUTO = object()


class Harness:
    """Feeds records through a task (processor/task.py) on the reference (Python) path,
    committing after each record."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.task = new_task(settings, native=False)
        self.next_offset: dict[int, int] = {}
        self.clock_ms = T0_MS
        self.sent: list[Sent] = []

    # -- building change records -------------------------------------------------------
    @staticmethod
    def change(
        instance: dict[str, Any] | None = None,
        *,
        entity: str = "service",
        operation: str | None = None,
        observed_at: str | None = None,
        correlation_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {"entityType": entity}
        if operation is not None:
            record["operation"] = operation
        if observed_at is not None:
            record["observedAt"] = observed_at
        if correlation_id is not None:
            record["correlationId"] = correlation_id
        if instance is not None:
            record["instance"] = instance
        record.update(extra)
        return record

    # -- feeding ----------------------------------------------------------------------
    def tick(self) -> int:
        """Advance the fake clock by one second; the record timestamp of the next record."""
        self.clock_ms += 1000
        return self.clock_ms

    def send(
        self,
        value: dict[str, Any] | bytes | None,
        *,
        key: Any = _AUTO,
        partition: int = 0,
        offset: int | None = None,
        timestamp: Any = _AUTO,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> Sent:
        """One Kafka record: a dict is JSON-encoded, bytes go as they are, None is a tombstone."""
        if key is _AUTO:
            key = _key_of(value)
        if isinstance(key, str):
            key = key.encode()
        if timestamp is _AUTO:
            timestamp = self.tick()
        if offset is None:
            offset = self.next_offset.get(partition, 0)
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), offset + 1)
        raw = orjson.dumps(value) if isinstance(value, dict) else value
        record = InputRecord(
            INPUT_TOPIC, partition, offset, timestamp, key, raw, list(headers or [])
        )
        result = self.task.process(record)
        self.task.commit()
        events: list[Event] = []
        if result.outcome == "emit":
            for message in result.messages:
                body = assert_valid_event(message)
                assert message.partition is None, "events are partitioned by the producer"
                assert message.topic == self.settings.topic_for(result.entity_type or "")
                events.append(Event(message, body))
        else:
            assert result.stored is None, f"{result.outcome} must not change the state"
        state = None
        if result.stored is not None and result.key is not None:
            state = self.task.state(partition, result.key)
        sent = Sent(record, result, events, state)
        self.sent.append(sent)
        return sent

    def upsert(
        self, instance: dict[str, Any], *, entity: str = "service", at: str | None = None, **kw: Any
    ) -> Sent:
        record_kw = {k: kw.pop(k) for k in ("correlation_id", "operation") if k in kw}
        return self.send(self.change(instance, entity=entity, observed_at=at, **record_kw), **kw)

    def delete(
        self, key: str, *, entity: str = "service", at: str | None = None, **kw: Any
    ) -> Sent:
        record_kw = {k: kw.pop(k) for k in ("correlation_id",) if k in kw}
        value = self.change(entity=entity, operation="delete", observed_at=at, id=key, **record_kw)
        return self.send(value, key=key, **kw)

    def tombstone(self, key: str, **kw: Any) -> Sent:
        return self.send(None, key=key, **kw)

    def state(self, key: str, partition: int = 0) -> State | None:
        return self.task.state(partition, key)

    @property
    def events(self) -> list[Event]:
        return [e for s in self.sent for e in s.events]


def _key_of(value: Any) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get("id"), str):
            return str(value["id"])
        instance = value.get("instance")
        if isinstance(instance, dict) and isinstance(instance.get("id"), str):
            return str(instance["id"])
    return None


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    """`make_harness(**settings)`: a fresh harness with these settings."""

    def make(**overrides: Any) -> Harness:
        return Harness(make_settings(**overrides))

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    """A harness with default settings (TMF v4, full payloads)."""
    return make_harness()


def service(sid: str = "svc-1", **attrs: Any) -> dict[str, Any]:
    """A TMF638 Service instance."""
    base: dict[str, Any] = {
        "id": sid,
        "href": f"/tmf-api/serviceInventory/v4/service/{sid}",
        "name": "Internet access",
        "category": "CFS",
        "state": "designed",
    }
    base.update(attrs)
    return {k: v for k, v in base.items() if v is not _DROP}


def resource(rid: str = "res-1", **attrs: Any) -> dict[str, Any]:
    """A TMF639 Resource instance."""
    base: dict[str, Any] = {
        "id": rid,
        "href": f"/tmf-api/resourceInventoryManagement/v4/resource/{rid}",
        "@type": "PhysicalResource",
        "name": "Router",
    }
    base.update(attrs)
    return {k: v for k, v in base.items() if v is not _DROP}


#: `service(name=DROP)` leaves the member out.
_DROP = object()


@pytest.fixture
def tmf() -> SimpleNamespace:
    """Builders for tests: `tmf.service(...)`, `tmf.resource(...)`, `tmf.at(s)`, `tmf.DROP`."""
    return SimpleNamespace(
        service=service, resource=resource, at=at, DROP=_DROP, T0_MS=T0_MS, DATA_DIR=DATA_DIR
    )
