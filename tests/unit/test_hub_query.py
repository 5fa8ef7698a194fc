"""Hub subscription queries (processor/hub/query.py): the TMF filter forms, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from processor.hub.query import MATCH_ALL, QueryError, parse_query
from processor.schemas import event_names

SERVICE = event_names("service", "v4")
RESOURCE = event_names("resource", "v4")


def event(event_type: str, **service: Any) -> dict[str, Any]:
    return {"eventType": event_type, "correlationId": "order-7", "event": {"service": service}}


def resource_event(event_type: str, **resource: Any) -> dict[str, Any]:
    return {"eventType": event_type, "event": {"resource": resource}}


@pytest.mark.parametrize("query", [None, "", "  ", "&"])
def test_no_query_matches_everything(query: str | None) -> None:
    parsed = parse_query(query, "service", SERVICE)
    assert parsed == MATCH_ALL
    assert parsed.matches(event("ServiceDeleteEvent"))


@pytest.mark.parametrize(
    "query",
    [
        "eventType=ServiceStateChangeEvent,ServiceDeleteEvent",
        "eventType=ServiceStateChangeEvent&eventType=ServiceDeleteEvent",
        " eventType = ServiceStateChangeEvent , ServiceDeleteEvent ",
        "eventType=Service%53tateChangeEvent,ServiceDeleteEvent",
    ],
)
def test_event_type_lists(query: str) -> None:
    parsed = parse_query(query, "service", SERVICE)
    assert parsed.matches(event("ServiceStateChangeEvent"))
    assert parsed.matches(event("ServiceDeleteEvent"))
    assert not parsed.matches(event("ServiceCreateEvent"))
    assert not parsed.matches(event("ServiceAttributeValueChangeEvent"))


def test_field_equality_on_the_payload() -> None:
    parsed = parse_query("event.service.state=active", "service", SERVICE)
    assert parsed.matches(event("ServiceStateChangeEvent", state="active"))
    assert not parsed.matches(event("ServiceStateChangeEvent", state="inactive"))
    assert not parsed.matches(event("ServiceDeleteEvent"))  # no state: no match


def test_event_type_and_field_must_both_hold() -> None:
    parsed = parse_query(
        "eventType=ResourceStateChangeEvent&event.resource.resourceStatus=alarm",
        "resource",
        RESOURCE,
    )
    assert parsed.matches(resource_event("ResourceStateChangeEvent", resourceStatus="alarm"))
    assert not parsed.matches(resource_event("ResourceCreateEvent", resourceStatus="alarm"))
    assert not parsed.matches(resource_event("ResourceStateChangeEvent", resourceStatus="standby"))


def test_nested_paths_lists_and_scalars() -> None:
    parsed = parse_query(
        "event.service.serviceCharacteristic.name=speed&event.service.isBundle=true"
        "&event.service.startMode=2",
        "service",
        SERVICE,
    )
    chars = [{"name": "colour", "value": "red"}, {"name": "speed", "value": 100}]
    assert parsed.matches(
        event("ServiceCreateEvent", serviceCharacteristic=chars, isBundle=True, startMode=2)
    )
    assert not parsed.matches(
        event("ServiceCreateEvent", serviceCharacteristic=chars[:1], isBundle=True, startMode=2)
    )
    assert not parsed.matches(
        event("ServiceCreateEvent", serviceCharacteristic=chars, isBundle=False, startMode=2)
    )
    assert not parsed.matches(
        event("ServiceCreateEvent", serviceCharacteristic=chars, isBundle=True, startMode="x")
    )


def test_repeated_field_means_any_of_the_values() -> None:
    parsed = parse_query(
        "event.service.state=active&event.service.state=inactive", "service", SERVICE
    )
    assert parsed.matches(event("ServiceStateChangeEvent", state="inactive"))
    assert not parsed.matches(event("ServiceStateChangeEvent", state="designed"))


def test_envelope_fields() -> None:
    parsed = parse_query("correlationId=order-7", "service", SERVICE)
    assert parsed.matches(event("ServiceCreateEvent"))
    assert not parse_query("correlationId=order-8", "service", SERVICE).matches(
        event("ServiceCreateEvent")
    )


def test_percent_encoded_values() -> None:
    parsed = parse_query("event.service.name=Fibre%20access", "service", SERVICE)
    assert parsed.matches(event("ServiceCreateEvent", name="Fibre access"))


def test_objects_and_null_never_equal_text() -> None:
    parsed = parse_query("event.service.place=null", "service", SERVICE)
    assert not parsed.matches(event("ServiceCreateEvent", place=None))
    assert not parsed.matches(event("ServiceCreateEvent", place={"id": "null"}))


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("eventType=ServiceBatchEvent", "not a service event"),
        ("eventType=ResourceCreateEvent", "not a service event"),
        # an encoded comma is part of the value, not a separator
        ("eventType=ServiceStateChangeEvent%2CServiceDeleteEvent", "not a service event"),
        ("event.resource.resourceStatus=alarm", "filter on event.service"),
        ("fields=state", "not supported"),
        ("state=active", "not supported"),
        ("event.service.state!=active", "only equality"),
        ("event.service.state>=active", "only equality"),
        ("event.service.state.gt=1", "only equality"),
        ("event.service.state>active", "only equality"),
        ("event.service.state", "not name=value"),
        ("eventType=", "empty value"),
        ("eventType=ServiceCreateEvent,", "empty value"),
        ("event.service.st ate=x", "dotted field path"),
        ("event.service..state=x", "dotted field path"),
        ("limit=10", "not supported"),
    ],
)
def test_unsupported_queries_are_refused(query: str, reason: str) -> None:
    with pytest.raises(QueryError, match=reason):
        parse_query(query, "service", SERVICE)


def test_v5_event_types_follow_the_version() -> None:
    v5 = event_names("service", "v5")
    parse_query("eventType=ServiceOperatingStatusChangeEvent", "service", v5)
    with pytest.raises(QueryError):
        parse_query("eventType=ServiceOperatingStatusChangeEvent", "service", SERVICE)
