"""The life of one broadband service, replayed through `tmf-events replay` from a file.

`tests/data/service-story.jsonl` holds the change records an inventory system would publish
for service svc-42: it is designed, gets a characteristic, is reserved, activated, annotated
by an engineer (private notes), re-sent, overtaken by a late record, edited, suspended,
terminated, deleted, tombstoned and finally created again for a new customer. This test reads
the CLI's output the way a TMF638 listener would and checks every event it should get.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from processor import cli
from tests.schema_check import assert_valid_event

STORY = Path(__file__).resolve().parents[1] / "data" / "service-story.jsonl"
HREF = "/tmf-api/serviceInventory/v4/service/svc-42"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SPEC = {"id": "spec-fibre", "name": "Fibre Internet"}
SPEED = [{"name": "downstreamSpeed", "value": "1G"}]


@pytest.fixture
def story_events(monkeypatch, capsysbinary):
    """Replay the story file through the CLI with `note` configured as private."""
    monkeypatch.setenv("TMF_EVENTS_PRIVATE_FIELDS", '["note"]')
    assert cli.main(["replay", str(STORY)]) == 0
    output = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert {m["topic"] for m in output} == {"tmf.service.events"}, "no dead letters expected"
    return output


def test_the_life_of_service_svc_42(story_events):
    events = iter(story_events)
    previous: dict = {}

    def next_event(expected_type: str, version: int, time: str, correlation: str) -> dict:
        """The next event the listener receives, with what every event must satisfy."""
        nonlocal previous
        message = next(events)
        event = assert_valid_event(message)
        headers = message["headers"]
        assert event["eventType"] == expected_type
        assert headers["ce_type"] == f"org.tmforum.tmf638.v4.{expected_type}"
        assert message["key"] == headers["ce_subject"] == headers["ce_partitionkey"] == "svc-42"
        assert headers["ce_entityversion"] == str(version)
        assert event["eventTime"] == event["timeOcurred"] == headers["ce_time"] == time
        assert event["correlationId"] == headers["ce_correlationid"] == correlation
        # Each event points back at the one before it, across deletes too.
        assert headers.get("ce_previousid") == (previous["eventId"] if previous else None)
        # The engineer's private notes never leave the processor.
        assert b"note" not in orjson.dumps(event)
        assert b"fridge" not in orjson.dumps(message)
        previous = event
        return event

    # 09:00 The service is designed for order 1001. The listener learns about it in full,
    # as the first event of its chain, with the trace of the order system.
    created = next_event("ServiceCreateEvent", 1, "2026-03-01T09:00:00.000Z", "order-1001")
    assert created["event"]["service"] == {
        "id": "svc-42",
        "href": HREF,
        "name": "Fibre Internet 1G",
        "description": "Home broadband for customer C-7",
        "category": "CFS",
        "state": "designed",
        "serviceSpecification": SPEC,
        "relatedParty": [{"id": "C-7", "role": "customer"}],
    }
    assert story_events[0]["headers"]["ce_traceparent"] == TRACEPARENT
    assert "ce_previousid" not in story_events[0]["headers"]

    # 09:05 The order adds a characteristic: an attribute change naming it.
    speed = next_event(
        "ServiceAttributeValueChangeEvent", 2, "2026-03-01T09:05:00.000Z", "order-1001"
    )
    assert speed["fieldPath"] == "serviceCharacteristic"
    assert speed["event"]["service"]["serviceCharacteristic"] == SPEED
    assert speed["event"]["service"]["state"] == "designed"

    # 09:10 Resources are reserved: a state change, and nothing else.
    reserved = next_event("ServiceStateChangeEvent", 3, "2026-03-01T09:10:00.000Z", "order-1001")
    assert reserved["event"]["service"]["state"] == "reserved"
    assert "fieldPath" not in reserved

    # 09:30 Activation sets the start date and the state in one record: first the attribute
    # change, then the state change, both as version 4.
    started = next_event(
        "ServiceAttributeValueChangeEvent", 4, "2026-03-01T09:30:00.000Z", "order-1001"
    )
    assert started["fieldPath"] == "startDate"
    activated = next_event("ServiceStateChangeEvent", 4, "2026-03-01T09:30:00.000Z", "order-1001")
    assert activated["event"]["service"]["state"] == "active"
    assert activated["event"]["service"]["startDate"] == "2026-03-01T09:30:00.000Z"

    # 10:00 An engineer writes a private note, 10:05 the same record comes again, and a late
    # record from 09:20 (still "reserved") turns up: the listener hears nothing of any of it.

    # 11:00 The description is removed: an attribute change naming the removed attribute.
    edited = next_event("ServiceAttributeValueChangeEvent", 5, "2026-03-01T11:00:00.000Z", "svc-42")
    assert edited["fieldPath"] == "description"
    assert "description" not in edited["event"]["service"]

    # 12:00 Billing suspends the service under ticket 77 (the new private note is ignored).
    suspended = next_event("ServiceStateChangeEvent", 6, "2026-03-01T12:00:00.000Z", "ticket-77")
    assert suspended["event"]["service"]["state"] == "inactive"

    # 13:00 A cease order ends it: the end date, then the terminated state, as version 7.
    ended = next_event(
        "ServiceAttributeValueChangeEvent", 7, "2026-03-01T13:00:00.000Z", "order-1002"
    )
    assert ended["fieldPath"] == "endDate"
    terminated = next_event("ServiceStateChangeEvent", 7, "2026-03-01T13:00:00.000Z", "order-1002")
    assert terminated["event"]["service"]["state"] == "terminated"

    # 13:30 The service is deleted from the inventory: only its identity is sent.
    deleted = next_event("ServiceDeleteEvent", 8, "2026-03-01T13:30:00.000Z", "order-1002")
    assert deleted["event"]["service"] == {"id": "svc-42", "href": HREF, "@type": "Service"}

    # 13:31 The upstream's compaction tombstone for the deleted key brings no second delete.

    # Next day the id is reused for a new customer: a fresh Create that continues the
    # version count and the chain from the delete.
    again = next_event("ServiceCreateEvent", 9, "2026-03-02T09:00:00.000Z", "order-1003")
    assert again["event"]["service"]["relatedParty"] == [{"id": "C-9", "role": "customer"}]
    assert again["event"]["service"]["state"] == "designed"
    assert "serviceCharacteristic" not in again["event"]["service"]

    # And that is all the listener receives.
    assert next(events, None) is None


def test_the_story_is_told_the_same_way_every_time(monkeypatch, capsysbinary):
    monkeypatch.setenv("TMF_EVENTS_PRIVATE_FIELDS", '["note"]')
    cli.main(["replay", str(STORY)])
    first = capsysbinary.readouterr().out
    cli.main(["replay", str(STORY)])
    assert capsysbinary.readouterr().out == first
    assert len(first.splitlines()) == 11


def test_without_the_private_setting_the_note_is_an_attribute(capsysbinary):
    """Private fields are configuration: the same story without it tells of the notes."""
    cli.main(["replay", str(STORY)])
    output = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    field_paths = [m["value"].get("fieldPath") for m in output]
    assert "note" in field_paths
