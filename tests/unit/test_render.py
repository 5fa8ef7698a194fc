"""Rendering (docs/design.md#output-tmf-events-as-cloudevents): TMF envelopes of both profiles,
payload modes, CloudEvents headers.

The headers are also compared with what the cloudevents 2.x Kafka binding produces for the
same attributes and data, so consumers using the SDK read exactly what we write.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event, to_binary_event
from cloudevents.core.v1.event import CloudEvent

from processor.ids import event_id
from processor.schemas import event_schema_id
from tests.schema_check import assert_valid_event

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# --------------------------------------------------------------------------------------
# envelopes


def test_v4_envelope_members(harness, tmf):
    sent = harness.upsert(tmf.service(), at="2026-01-01T10:00:00.123Z", offset=7)
    body = sent.event.body
    expected_id = event_id(tmf.T0_MS + 123, "inventory.changes", 0, 7, 0)
    assert body == {
        "eventId": expected_id,
        "eventTime": "2026-01-01T10:00:00.123Z",
        "eventType": "ServiceCreateEvent",
        "correlationId": "svc-1",
        "timeOcurred": "2026-01-01T10:00:00.123Z",
        "event": {"service": tmf.service()},
    }
    assert list(body) == [
        "eventId",
        "eventTime",
        "eventType",
        "correlationId",
        "timeOcurred",
        "event",
    ]


def test_v4_field_path_only_on_attribute_value_change(harness, tmf):
    events = [
        *harness.upsert(tmf.service()).events,
        *harness.upsert(tmf.service(name="n", description="d", state="active")).events,
        *harness.delete("svc-1").events,
    ]
    assert [(e.name, e.body.get("fieldPath")) for e in events] == [
        ("ServiceCreateEvent", None),
        ("ServiceAttributeValueChangeEvent", "description,name"),
        ("ServiceStateChangeEvent", None),
        ("ServiceDeleteEvent", None),
    ]


def test_v5_envelope_members(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    body = harness.upsert(tmf.service(), at=tmf.at(0), correlation_id="order-9").event.body
    ref = {"id": "tmf-events", "name": "tmf-events", "@type": "EntityRef"}
    assert body == {
        "@type": "ServiceCreateEvent",
        "@baseType": "Event",
        "eventId": body["eventId"],
        "eventTime": "2026-01-01T10:00:00.000Z",
        "eventType": "ServiceCreateEvent",
        "correlationId": "order-9",
        "timeOccurred": "2026-01-01T10:00:00.000Z",
        "source": ref,
        "reportingSystem": ref,
        "event": {"service": {**tmf.service(), "@type": "Service"}},
    }


def test_v5_has_no_field_path_and_every_payload_carries_type(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    harness.upsert(tmf.service(state="reserved", operatingStatus="pending"))
    sent = harness.upsert(tmf.service(name="n", state="active", operatingStatus="running"))
    for event in [*harness.events]:
        assert "fieldPath" not in event.body
        assert "timeOcurred" not in event.body
        assert event.body["@type"] == event.name
        assert event.payload["@type"] == "Service"
    assert len(sent.events) == 3


def test_v5_resource_type_defaults_to_resource_and_keeps_the_instances(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    plain = harness.upsert(tmf.resource(rid="r1", **{"@type": tmf.DROP}), entity="resource")
    typed = harness.upsert(tmf.resource(rid="r2"), entity="resource")
    assert plain.event.payload["@type"] == "Resource"
    assert typed.event.payload["@type"] == "PhysicalResource"


def test_v4_full_payload_is_the_instance_as_is(harness, tmf):
    event = harness.upsert(tmf.service()).event
    assert "@type" not in event.payload  # v4 does not add it (only Delete always has it)
    assert event.payload == tmf.service()


def test_v5_reporting_system_from_settings(make_harness, tmf):
    harness = make_harness(tmf_version="v5", reporting_system={"id": "inv-1", "name": "OSS"})
    body = harness.upsert(tmf.service()).event.body
    assert (
        body["source"]
        == body["reportingSystem"]
        == {
            "id": "inv-1",
            "name": "OSS",
            "@type": "EntityRef",
        }
    )


def test_v5_reporting_system_id_defaults_to_app_id(make_harness, tmf):
    harness = make_harness(tmf_version="v5", app_id="inventory-events")
    body = harness.upsert(tmf.service()).event.body
    assert body["reportingSystem"]["id"] == "inventory-events"


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_envelope_constants_from_settings(make_harness, tmf, version):
    envelope = {
        "domain": "inventory",
        "title": "Inventory change",
        "description": "a change",
        "priority": "3",
    }
    harness = make_harness(tmf_version=version, envelope=envelope)
    harness.upsert(tmf.service())
    harness.upsert(tmf.service(name="n", state="active"))
    harness.delete("svc-1")
    assert len(harness.events) == 4
    for event in harness.events:
        assert {k: event.body[k] for k in envelope} == envelope


def test_envelope_constants_absent_by_default(harness, tmf):
    body = harness.upsert(tmf.service()).event.body
    assert not {"domain", "title", "description", "priority"} & set(body)


def test_partial_envelope_constants(make_harness, tmf):
    body = make_harness(envelope={"domain": "inv"}).upsert(tmf.service()).event.body
    assert body["domain"] == "inv"
    assert not {"title", "description", "priority"} & set(body)


def test_correlation_id_defaults_to_the_instance_id(harness, tmf):
    own = harness.upsert(tmf.service(), correlation_id="order-42").event
    default = harness.upsert(tmf.service(name="other")).event
    assert own.body["correlationId"] == own.headers["ce_correlationid"] == "order-42"
    assert default.body["correlationId"] == default.headers["ce_correlationid"] == "svc-1"


# --------------------------------------------------------------------------------------
# payload modes


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_delta_payloads(make_harness, tmf, version):
    harness = make_harness(tmf_version=version, payload="delta")
    href = "/tmf-api/serviceInventory/v4/service/svc-1"
    first = tmf.service(description="old", state="designed", operatingStatus="pending")
    create = harness.upsert(first).event
    changed = tmf.service(
        name="renamed",
        description=tmf.DROP,
        state="active",
        operatingStatus="running",
        place={"id": "p1"},
    )
    changes = harness.upsert(changed).events
    delete = harness.delete("svc-1").event

    expected_create = {**first, "@type": "Service"} if version == "v5" else first
    assert create.payload == expected_create  # Create is always full
    ident = {"id": "svc-1", "href": href, "@type": "Service"}
    if version == "v4":
        avc, sc = changes
        assert avc.payload == {
            **ident,
            "description": None,
            "name": "renamed",
            "operatingStatus": "running",
            "place": {"id": "p1"},
        }
        assert avc.body["fieldPath"] == "description,name,operatingStatus,place"
        assert sc.payload == {**ident, "state": "active"}
    else:
        avc, sc, osc = changes
        assert avc.payload == {
            **ident,
            "description": None,
            "name": "renamed",
            "place": {"id": "p1"},
        }
        assert sc.payload == {**ident, "state": "active"}
        assert osc.payload == {**ident, "operatingStatus": "running"}
    assert delete.payload == ident


def test_delta_keeps_the_instances_type(make_harness, tmf):
    harness = make_harness(payload="delta")
    harness.upsert(tmf.resource(), entity="resource")
    event = harness.upsert(tmf.resource(name="R2"), entity="resource").event
    assert event.payload == {
        "id": "res-1",
        "href": "/tmf-api/resourceInventoryManagement/v4/resource/res-1",
        "@type": "PhysicalResource",
        "name": "R2",
    }


def test_delta_removed_state_field_is_null(make_harness, tmf):
    harness = make_harness(payload="delta")
    harness.upsert(tmf.service(state="active"))
    event = harness.upsert(tmf.service(state=tmf.DROP)).event
    assert event.name == "ServiceStateChangeEvent"
    assert event.payload["state"] is None


def test_full_payloads_of_change_events_carry_the_whole_instance(harness, tmf):
    harness.upsert(tmf.service())
    changed = tmf.service(name="n", state="active", category=tmf.DROP)
    avc, sc = harness.upsert(changed).events
    assert avc.payload == sc.payload == changed


@pytest.mark.parametrize("version", ["v4", "v5"])
def test_delta_when_the_instance_drops_its_href(make_harness, tmf, version):
    """An instance that no longer has an `href` is valid input; its change event must still
    validate against the schema its ce_dataschema names (the harness checks every event).
    """
    harness = make_harness(tmf_version=version, payload="delta")
    harness.upsert(tmf.service())
    sent = harness.upsert(tmf.service(href=tmf.DROP))
    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    assert "href" not in sent.event.payload or sent.event.payload["href"] is None


# --------------------------------------------------------------------------------------
# headers


def test_headers_of_a_first_event(make_harness, tmf):
    harness = make_harness()
    sent = harness.upsert(
        tmf.service(),
        at="2026-01-01T10:00:00.123Z",
        correlation_id="order-1",
        headers=[("traceparent", TRACEPARENT), ("other", b"x")],
        offset=3,
    )
    event = sent.event
    eid = event_id(tmf.T0_MS + 123, "inventory.changes", 0, 3, 0)
    assert event.message.headers == [
        ("ce_specversion", b"1.0"),
        ("ce_id", eid.encode()),
        ("ce_source", b"urn:tmf-events:tmf-events"),
        ("ce_type", b"org.tmforum.tmf638.v4.ServiceCreateEvent"),
        ("ce_time", b"2026-01-01T10:00:00.123Z"),
        ("ce_subject", b"svc-1"),
        ("ce_dataschema", b"urn:tmf-events:schema:tmf638:v4:ServiceCreateEvent"),
        ("ce_partitionkey", b"svc-1"),
        ("ce_correlationid", b"order-1"),
        ("ce_entityversion", b"1"),
        ("ce_traceparent", TRACEPARENT),
        ("content-type", b"application/json"),
    ]
    assert event.message.key == b"svc-1"
    assert event.topic == "tmf.service.events"


def test_headers_of_chained_events(harness, tmf):
    create = harness.upsert(tmf.service()).event
    avc, sc = harness.upsert(tmf.service(name="n", state="active")).events
    assert avc.headers["ce_previousid"] == create.id
    assert sc.headers["ce_previousid"] == avc.id
    assert avc.headers["ce_entityversion"] == sc.headers["ce_entityversion"] == "2"
    assert "ce_traceparent" not in avc.headers
    for event in (avc, sc):
        assert event.header_names[-1] == "content-type"
        assert event.headers["ce_id"] == event.body["eventId"]
        assert event.headers["ce_time"] == event.body["eventTime"]


@pytest.mark.parametrize(
    ("entity", "version", "kinds"),
    [
        ("service", "v4", ["Create", "AttributeValueChange", "StateChange", "Delete"]),
        ("resource", "v4", ["Create", "AttributeValueChange", "StateChange", "Delete"]),
        (
            "service",
            "v5",
            ["Create", "AttributeValueChange", "StateChange", "OperatingStatusChange", "Delete"],
        ),
        ("resource", "v5", ["Create", "AttributeValueChange", "StateChange", "Delete"]),
    ],
)
def test_ce_type_and_dataschema_for_every_event(make_harness, tmf, entity, version, kinds):
    harness = make_harness(tmf_version=version)
    if entity == "service":
        harness.upsert(tmf.service(state="designed", operatingStatus="pending"))
        harness.upsert(tmf.service(name="n", state="active", operatingStatus="running"))
        harness.delete("svc-1")
        api, cls = "tmf638", "Service"
    else:
        state = "operationalState"
        values = ("enable", "disable") if version == "v4" else ("enabled", "disabled")
        harness.upsert(tmf.resource(**{state: values[0]}), entity="resource")
        harness.upsert(tmf.resource(name="n", **{state: values[1]}), entity="resource")
        harness.delete("res-1", entity="resource")
        api, cls = "tmf639", "Resource"
    names = [f"{cls}{kind}Event" for kind in kinds]
    assert [e.name for e in harness.events] == names
    for event, name in zip(harness.events, names, strict=True):
        assert event.headers["ce_type"] == f"org.tmforum.{api}.{version}.{name}"
        assert event.headers["ce_dataschema"] == event_schema_id(entity, version, name)
        assert event.topic == f"tmf.{entity}.events"


def test_type_prefix_source_and_topics_from_settings(make_harness, tmf):
    harness = make_harness(
        type_prefix="com.example",
        source="urn:example:inventory",
        service_topic="svc-events",
        resource_topic="res-events",
    )
    service = harness.upsert(tmf.service()).event
    resource = harness.upsert(tmf.resource(), entity="resource").event
    assert service.headers["ce_type"] == "com.example.tmf638.v4.ServiceCreateEvent"
    assert service.headers["ce_source"] == "urn:example:inventory"
    assert (service.topic, resource.topic) == ("svc-events", "res-events")


def test_source_defaults_to_the_app_id(make_harness, tmf):
    event = make_harness(app_id="inv-prod").upsert(tmf.service()).event
    assert event.headers["ce_source"] == "urn:tmf-events:inv-prod"


def test_traceparent_header_without_value_is_not_copied(harness, tmf):
    event = harness.upsert(tmf.service(), headers=[("traceparent", None)]).event
    assert "ce_traceparent" not in event.header_names


def test_traceparent_is_copied_to_every_event_of_the_record(harness, tmf):
    harness.upsert(tmf.service())
    sent = harness.upsert(
        tmf.service(name="n", state="active"), headers=[("traceparent", TRACEPARENT)]
    )
    assert [e.headers["ce_traceparent"] for e in sent.events] == [TRACEPARENT.decode()] * 2


def test_cloudevent_attribute_names_follow_the_naming_rule(harness, tmf):
    harness.upsert(tmf.service(), headers=[("traceparent", TRACEPARENT)])
    harness.upsert(tmf.service(name="n"))
    for event in harness.events:
        for name in event.header_names:
            if name == "content-type":
                continue
            assert name.startswith("ce_")
            attribute = name[3:]
            assert attribute.isascii() and attribute.isalnum() and attribute.islower()
            assert len(attribute) <= 20


# --------------------------------------------------------------------------------------
# equivalence with the cloudevents 2.x Kafka binding


def _sdk_message(event, *, settings, entity, version, previous, traceparent, entity_version):
    """What cloudevents' to_binary_event produces for the attributes
    docs/design.md#output-tmf-events-as-cloudevents defines."""
    body = event.body
    name = body["eventType"]
    api = {"service": "tmf638", "resource": "tmf639"}[entity]
    attributes = {
        "specversion": "1.0",
        "id": body["eventId"],
        "source": settings.source,
        "type": f"{settings.type_prefix}.{api}.{version}.{name}",
        "time": datetime.fromisoformat(body["eventTime"]),
        "subject": body["event"][entity]["id"],
        "dataschema": event_schema_id(entity, version, name),
        "datacontenttype": "application/json",
        "partitionkey": body["event"][entity]["id"],
        "correlationid": body["correlationId"],
        "entityversion": str(entity_version),
    }
    if previous is not None:
        attributes["previousid"] = previous
    if traceparent is not None:
        attributes["traceparent"] = traceparent
    return to_binary_event(CloudEvent(attributes=attributes, data=body))


def _assert_same_as_sdk(event, sdk):
    ours = dict(event.message.headers)
    theirs = dict(sdk.headers)
    assert set(ours) == set(theirs)
    # The SDK writes microseconds (.123000Z), docs/design.md#identity-and-determinism milliseconds
    # (.123Z): same instant.
    assert datetime.fromisoformat(ours.pop("ce_time").decode()) == datetime.fromisoformat(
        theirs.pop("ce_time").decode()
    )
    assert ours == theirs
    sdk_key = sdk.key.encode() if isinstance(sdk.key, str) else sdk.key
    assert event.message.key == sdk_key
    assert orjson.loads(event.message.value) == orjson.loads(sdk.value)


@pytest.mark.parametrize(
    ("version", "payload"), [("v4", "full"), ("v4", "delta"), ("v5", "full"), ("v5", "delta")]
)
def test_headers_equal_the_cloudevents_kafka_binding(make_harness, tmf, version, payload):
    harness = make_harness(tmf_version=version, payload=payload)
    trace = [("traceparent", TRACEPARENT)]
    steps = [
        harness.upsert(tmf.service(operatingStatus="pending"), at=tmf.at(0.123), headers=trace),
        harness.upsert(
            tmf.service(name="n", state="active", operatingStatus="running"),
            at=tmf.at(1),
            correlation_id="order-7",
        ),
        harness.upsert(tmf.resource(), entity="resource", at=tmf.at(2.5)),
        harness.delete("svc-1", at=tmf.at(3)),
        harness.tombstone("res-1", timestamp=tmf.T0_MS + 4_000, headers=trace),
    ]
    previous: dict[str, str] = {}
    checked = 0
    for sent in steps:
        for event in sent.events:
            entity = "service" if event.topic == "tmf.service.events" else "resource"
            trace_value = dict(sent.record.headers).get("traceparent")
            sdk = _sdk_message(
                event,
                settings=harness.settings,
                entity=entity,
                version=version,
                previous=previous.get(event.key),
                traceparent=None if trace_value is None else trace_value.decode(),
                entity_version=sent.state.version,
            )
            _assert_same_as_sdk(event, sdk)
            previous[event.key] = event.id
            checked += 1
    assert checked == (6 if version == "v4" else 7)


def test_sdk_reads_our_message_back(harness, tmf):
    event = harness.upsert(
        tmf.service(), at=tmf.at(0.5), headers=[("traceparent", TRACEPARENT)]
    ).event
    message = KafkaMessage(
        headers=dict(event.message.headers), key=event.message.key, value=event.message.value
    )
    parsed = from_kafka_event(message)
    assert parsed.get_id() == event.id
    assert parsed.get_type() == "org.tmforum.tmf638.v4.ServiceCreateEvent"
    assert parsed.get_time() == datetime.fromisoformat("2026-01-01T10:00:00.500Z")
    assert parsed.get_subject() == "svc-1"
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_extension("partitionkey") == "svc-1"
    assert parsed.get_extension("traceparent") == TRACEPARENT.decode()
    assert parsed.get_extension("entityversion") == "1"
    assert parsed.get_data() == event.body


# --------------------------------------------------------------------------------------
# tests/schema_check.py accepts every shape a test may hold an event in


class _ConfluentLike:
    """The accessors of a confluent_kafka.Message."""

    def __init__(self, headers, value):
        self._headers, self._value = headers, value

    def headers(self):
        return self._headers

    def value(self):
        return self._value


def test_schema_check_accepts_every_message_shape(harness, tmf):
    event = harness.upsert(tmf.service()).event
    message = event.message
    replay_shape = {
        "headers": {k: v.decode() for k, v in message.headers},
        "value": event.body,
    }
    shapes = [
        message,
        _ConfluentLike(list(message.headers), message.value),
        KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value),
        replay_shape,
        orjson.dumps(replay_shape),
        orjson.dumps(replay_shape).decode(),
        (message.headers, message.value),
        (dict(message.headers), message.value.decode()),
    ]
    for shape in shapes:
        assert assert_valid_event(shape) == event.body


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda b, h: b.pop("eventTime"), "eventTime"),
        (lambda b, h: b["event"]["service"].update(state="broken"), "state"),
        (lambda b, h: b.update(extra=1), "extra"),
        (lambda b, h: h.update(ce_id=b"0194226b-9d7b-7a3c-8f21-4c5d6e7f8091"), "ce_id"),
        (lambda b, h: h.pop("ce_dataschema"), "ce_dataschema"),
        (lambda b, h: h.update({"content-type": b"text/plain"}), "content-type"),
    ],
)
def test_schema_check_rejects_invalid_events(harness, tmf, mutate, complaint):
    event = harness.upsert(tmf.service()).event
    body = orjson.loads(event.message.value)
    headers = dict(event.message.headers)
    mutate(body, headers)
    with pytest.raises(AssertionError, match=complaint):
        assert_valid_event((headers, orjson.dumps(body)))


def test_schema_check_rejects_duplicate_headers(harness, tmf):
    message = harness.upsert(tmf.service()).event.message
    with pytest.raises(AssertionError, match="duplicate"):
        assert_valid_event(([*message.headers, ("ce_id", b"x")], message.value))


@pytest.mark.parametrize(
    "traceparent",
    [b"\xff\xfe", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\xc3"],
    ids=["binary", "truncated-utf8"],
)
def test_a_non_utf8_traceparent_never_makes_an_unreadable_event(harness, tmf, traceparent):
    """CloudEvents' Kafka binding: header values MUST be UTF-8. One bad input header must not
    produce an event that SDK consumers cannot parse (the harness checks every header)."""
    sent = harness.upsert(tmf.service(), headers=[("traceparent", traceparent)])
    message = sent.event.message
    parsed = from_kafka_event(
        KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value)
    )
    assert parsed.get_id() == sent.event.id


def test_schema_check_rejects_non_utf8_headers(harness, tmf):
    message = harness.upsert(tmf.service()).event.message
    with pytest.raises(AssertionError, match="not UTF-8"):
        assert_valid_event(([*message.headers, ("x-bin", b"\xff")], message.value))
