"""TMF event envelopes (v4 / v5) and CloudEvents binary-mode headers
(docs/design.md#output-tmf-events-as-cloudevents). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from processor.config import Settings
from processor.decide import Planned
from processor.ids import event_id
from processor.messages import OutMessage
from processor.records import Change
from processor.schemas import event_schema_id
from processor.state.model import State, StoredEvent
from processor.timefmt import format_ms
from processor.tmf import ENTITY_NAME, ENTITY_TYPES, TMF_API, event_name, kinds

SPEC = ("ce_specversion", b"1.0")
_IDENTITY = frozenset(("id", "href", "@type"))  # never null: dropped rather than nulled
CONTENT_TYPE = ("content-type", b"application/json")


@dataclass(slots=True, frozen=True)
class _EventConst:
    name: str
    topic: str
    ce_type: bytes
    dataschema: bytes


@dataclass(slots=True)
class Rendered:
    """One record's event messages, and the same events as the state keeps them."""

    messages: list[OutMessage]
    stored: list[StoredEvent]


class Renderer:
    """Holds everything derivable from settings, so rendering a record does little work."""

    def __init__(self, settings: Settings) -> None:
        self.v5 = settings.tmf_version == "v5"
        self.delta = settings.payload == "delta"
        self.input_topic = settings.input_topic
        self.source = ("ce_source", settings.source.encode())
        self.constants = {k: v for k, v in settings.envelope.model_dump().items() if v is not None}
        ref = {"id": settings.reporting_system.id, "name": settings.reporting_system.name}
        self.entity_ref = {**ref, "@type": "EntityRef"}
        self.consts: dict[tuple[str, str], _EventConst] = {}
        for entity_type in ENTITY_TYPES:
            for kind in kinds(entity_type, settings.tmf_version):
                name = event_name(entity_type, kind)
                ce_type = (
                    f"{settings.type_prefix}.{TMF_API[entity_type]}.{settings.tmf_version}.{name}"
                )
                self.consts[(entity_type, kind)] = _EventConst(
                    name=name,
                    topic=settings.topic_for(entity_type),
                    ce_type=ce_type.encode(),
                    dataschema=event_schema_id(entity_type, settings.tmf_version, name).encode(),
                )

    def render(
        self,
        change: Change,
        entity_type: str,
        planned: tuple[Planned, ...],
        public: dict[str, Any] | None,
        after: State,
        partition: int,
        offset: int,
    ) -> Rendered:
        key = change.key
        key_bytes = key.encode()
        time = format_ms(change.time_ms)
        time_b = time.encode()
        correlation = change.correlation_id if change.correlation_id is not None else key
        previous = after.last_event_id
        version_b = str(after.version).encode()
        default_type = ENTITY_NAME[entity_type]
        messages: list[OutMessage] = []
        stored: list[StoredEvent] = []
        for index, plan in enumerate(planned):
            const = self.consts[(entity_type, plan.kind)]
            eid = event_id(change.time_ms, self.input_topic, partition, offset, index)
            payload = self._payload(plan, key, public, after, default_type)
            body = self._envelope(const.name, eid, time, correlation, plan, entity_type, payload)
            value = orjson.dumps(body)
            headers: list[tuple[str, bytes | None]] = [
                SPEC,
                ("ce_id", eid.encode()),
                self.source,
                ("ce_type", const.ce_type),
                ("ce_time", time_b),
                ("ce_subject", key_bytes),
                ("ce_dataschema", const.dataschema),
                ("ce_partitionkey", key_bytes),
                ("ce_correlationid", correlation.encode()),
                ("ce_entityversion", version_b),
            ]
            if previous is not None:
                headers.append(("ce_previousid", previous.encode()))
            if change.traceparent is not None:
                headers.append(("ce_traceparent", change.traceparent))
            headers.append(CONTENT_TYPE)
            messages.append(OutMessage(const.topic, None, key_bytes, value, headers))
            stored.append(StoredEvent(eid, const.name, time, const.topic, parts=(headers, value)))
            previous = eid
        return Rendered(messages, stored)

    def _payload(
        self,
        plan: Planned,
        key: str,
        public: dict[str, Any] | None,
        after: State,
        default_type: str,
    ) -> dict[str, Any]:
        kind = plan.kind
        if kind == "Delete" or public is None:
            out: dict[str, Any] = {"id": key}
            if after.href is not None:
                out["href"] = after.href
            out["@type"] = after.at_type or default_type
            return out
        if kind == "Create" or not self.delta:
            if self.v5 and not isinstance(public.get("@type"), str):
                return {**public, "@type": default_type}
            return public
        out = {"id": key}
        href = public.get("href")
        if href is not None:
            out["href"] = href
        out["@type"] = public.get("@type") or default_type
        for name in plan.changed:
            if name not in out and name not in _IDENTITY:
                out[name] = None if name in plan.removed else public.get(name)
        return out

    def _envelope(
        self,
        name: str,
        eid: str,
        time: str,
        correlation: str,
        plan: Planned,
        entity_type: str,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        if self.v5:
            body: dict[str, Any] = {
                "@type": name,
                "@baseType": "Event",
                "eventId": eid,
                "eventTime": time,
                "eventType": name,
                "correlationId": correlation,
                **self.constants,
                "timeOccurred": time,
                "source": self.entity_ref,
                "reportingSystem": self.entity_ref,
            }
        else:
            body = {
                "eventId": eid,
                "eventTime": time,
                "eventType": name,
                "correlationId": correlation,
                **self.constants,
                "timeOcurred": time,
            }
            if plan.kind == "AttributeValueChange":
                body["fieldPath"] = ",".join(plan.changed)
        body["event"] = {entity_type: payload}
        return body
