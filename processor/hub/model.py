"""What the hub topic holds: subscriptions and each one's delivery positions.

The hub topic (`hub_topic`, compacted, one partition) is the hub's only storage. Its keys:

- `subscription/<id>`: a subscription (JSON below); a tombstone unregisters it;
- `position/<id>/<topic>/<partition>`: where the subscription's delivery stands in one output
  partition (the next offset to deliver) and whether it is paused there.

A subscription records the end of every output partition at its registration (`start`), so
every replica begins it at the same place: listeners get the events from that time on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SUBSCRIPTION_PREFIX = "subscription/"
POSITION_PREFIX = "position/"


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    entity_type: str  # service | resource
    api_version: str  # v4 | v5: the shape its answers take
    callback: str
    query: str | None
    topic: str
    start: dict[int, int]  # output partition -> first offset to deliver
    created_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "entityType": self.entity_type,
                "apiVersion": self.api_version,
                "callback": self.callback,
                "query": self.query,
                "topic": self.topic,
                "start": {str(p): o for p, o in sorted(self.start.items())},
                "createdMs": self.created_ms,
            }
        )

    @staticmethod
    def from_json(raw: bytes) -> Subscription:
        doc: dict[str, Any] = orjson.loads(raw)
        return Subscription(
            id=str(doc["id"]),
            entity_type=str(doc["entityType"]),
            api_version=str(doc.get("apiVersion", "v4")),
            callback=str(doc["callback"]),
            query=doc.get("query"),
            topic=str(doc["topic"]),
            start={int(p): int(o) for p, o in doc.get("start", {}).items()},
            created_ms=int(doc.get("createdMs", 0)),
        )


@dataclass(frozen=True, slots=True)
class Position:
    offset: int  # the next offset to deliver
    paused: bool = False
    paused_since_ms: int | None = None
    last_error: str | None = None
    updated_ms: int = 0

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"offset": self.offset, "paused": self.paused}
        if self.paused_since_ms is not None:
            doc["pausedSinceMs"] = self.paused_since_ms
        if self.last_error is not None:
            doc["lastError"] = self.last_error
        doc["updatedMs"] = self.updated_ms
        return orjson.dumps(doc)

    @staticmethod
    def from_json(raw: bytes) -> Position:
        doc: dict[str, Any] = orjson.loads(raw)
        return Position(
            offset=int(doc["offset"]),
            paused=bool(doc.get("paused", False)),
            paused_since_ms=doc.get("pausedSinceMs"),
            last_error=doc.get("lastError"),
            updated_ms=int(doc.get("updatedMs", 0)),
        )


def subscription_key(sub_id: str) -> str:
    return SUBSCRIPTION_PREFIX + sub_id


def position_key(sub_id: str, topic: str, partition: int) -> str:
    return f"{POSITION_PREFIX}{sub_id}/{topic}/{partition}"


def parse_position_key(key: str) -> tuple[str, str, int] | None:
    """(subscription id, topic, partition) of a position key; None for anything else."""
    if not key.startswith(POSITION_PREFIX):
        return None
    sub_id, _, rest = key[len(POSITION_PREFIX) :].partition("/")
    topic, _, partition = rest.rpartition("/")
    if not sub_id or not topic or not partition.isdigit():
        return None
    return sub_id, topic, int(partition)
