"""Deciding (docs/design.md#deciding): one test per row of the table, private fields and state
fields.

Records go through `Core` (the code path `run` and `replay` share) via the `harness` fixture,
which checks every emitted event against its JSON Schema; a few tests call `decide` directly
for precedences that are hard to reach through records.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processor.canonical import digest, rendering
from processor.decide import Policy, decide
from processor.messages import Result
from processor.records import Change, InputRecord
from processor.state.codec import decode_state, encode_state
from processor.state.model import State
from processor.task import new_task
from processor.timefmt import format_ms
from processor.tmf import DEFAULT_STATE_FIELDS
from tests.unit.conftest import make_settings

# --------------------------------------------------------------------------------------
# upsert, no live state: Create


def test_create_of_a_new_instance_is_version_1_without_previous_id(harness, tmf):
    sent = harness.upsert(tmf.service(), at=tmf.at(0))

    assert sent.outcome == "emit"
    event = sent.event
    assert event.name == "ServiceCreateEvent"
    assert event.version == 1
    assert "ce_previousid" not in event.header_names
    assert event.payload == tmf.service()  # the full public instance
    state = harness.state("svc-1")
    assert state is not None
    assert (state.version, state.deleted, state.entity_type) == (1, False, "service")
    assert state.last_event_id == event.id
    assert state.last_event_type == "ServiceCreateEvent"
    assert state.last_event_time == tmf.at(0)
    assert state.observed_at == tmf.T0_MS
    assert state.offset == sent.record.offset


def test_re_create_after_delete_continues_version_and_previous_id_chain(harness, tmf):
    create = harness.upsert(tmf.service(), at=tmf.at(0)).event
    delete = harness.delete("svc-1", at=tmf.at(1)).event
    recreate = harness.upsert(tmf.service(name="again"), at=tmf.at(2)).event

    assert [create.name, delete.name, recreate.name] == [
        "ServiceCreateEvent",
        "ServiceDeleteEvent",
        "ServiceCreateEvent",
    ]
    assert [create.version, delete.version, recreate.version] == [1, 2, 3]
    assert delete.previous == create.id
    assert recreate.previous == delete.id
    assert recreate.payload == tmf.service(name="again")
    state = harness.state("svc-1")
    assert state is not None and not state.deleted and state.version == 3


def test_create_of_a_resource_goes_to_the_resource_topic(harness, tmf):
    event = harness.upsert(tmf.resource(), entity="resource").event
    assert event.name == "ResourceCreateEvent"
    assert event.topic == "tmf.resource.events"
    assert event.payload == tmf.resource()


# --------------------------------------------------------------------------------------
# upsert, same hash: nothing


def test_same_instance_again_is_unchanged_and_emits_nothing(harness, tmf):
    first = harness.upsert(tmf.service(), at=tmf.at(0))
    again = harness.upsert(tmf.service(), at=tmf.at(5), correlation_id="other-order")

    assert again.outcome == "unchanged"
    assert again.messages == []
    state = harness.state("svc-1")
    assert state is not None
    assert state.version == 1
    assert state.offset == first.record.offset  # the state is untouched
    assert state.observed_at == tmf.T0_MS


def test_member_order_and_whitespace_do_not_count_as_a_change(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(0))
    reordered = dict(reversed(list(tmf.service().items())))
    raw = orjson.dumps(
        {"instance": reordered, "observedAt": tmf.at(1), "entityType": "service"},
        option=orjson.OPT_INDENT_2,
    )
    sent = harness.send(raw, key="svc-1")
    assert sent.outcome == "unchanged"
    assert sent.messages == []


# --------------------------------------------------------------------------------------
# upsert, hash differs


def test_attribute_change_emits_attribute_value_change_only(harness, tmf):
    create = harness.upsert(tmf.service()).event
    sent = harness.upsert(tmf.service(name="Fibre access"))

    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    event = sent.event
    assert event.body["fieldPath"] == "name"
    assert event.version == 2
    assert event.previous == create.id
    assert event.payload == tmf.service(name="Fibre access")


def test_field_path_lists_added_changed_and_removed_attributes_sorted(harness, tmf):
    harness.upsert(tmf.service())
    sent = harness.upsert(
        tmf.service(name="renamed", category=tmf.DROP, description="new", state="designed")
    )
    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    assert sent.event.body["fieldPath"] == "category,description,name"


def test_state_change_emits_state_change_only(harness, tmf):
    harness.upsert(tmf.service(state="designed"))
    sent = harness.upsert(tmf.service(state="active"))

    assert sent.names == ["ServiceStateChangeEvent"]
    assert "fieldPath" not in sent.event.body
    assert sent.event.payload["state"] == "active"
    assert sent.event.version == 2


def test_attribute_and_state_change_give_both_events_in_order_sharing_the_version(harness, tmf):
    create = harness.upsert(tmf.service(state="designed")).event
    sent = harness.upsert(tmf.service(state="active", name="renamed"))

    assert sent.names == ["ServiceAttributeValueChangeEvent", "ServiceStateChangeEvent"]
    avc, sc = sent.events
    assert avc.version == sc.version == 2
    assert avc.previous == create.id
    assert sc.previous == avc.id  # the chain runs through the record's own events
    assert avc.id != sc.id
    assert avc.body["fieldPath"] == "name"  # state fields are not attribute changes
    assert harness.state("svc-1").last_event_id == sc.id


def test_v5_operating_status_gets_its_own_event(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    harness.upsert(tmf.service(state="active", operatingStatus="running"))
    sent = harness.upsert(tmf.service(state="active", operatingStatus="degraded"))

    assert sent.names == ["ServiceOperatingStatusChangeEvent"]
    assert sent.event.payload["operatingStatus"] == "degraded"
    assert sent.event.version == 2


def test_v5_attribute_state_and_operating_status_change_in_that_order(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    create = harness.upsert(tmf.service(state="reserved", operatingStatus="pending")).event
    sent = harness.upsert(
        tmf.service(name="renamed", state="active", operatingStatus="running"),
    )

    assert sent.names == [
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
        "ServiceOperatingStatusChangeEvent",
    ]
    avc, sc, osc = sent.events
    assert {e.version for e in sent.events} == {2}
    assert (avc.previous, sc.previous, osc.previous) == (create.id, avc.id, sc.id)
    assert len({avc.id, sc.id, osc.id}) == 3


def test_v5_state_and_operating_status_without_attribute_change(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    harness.upsert(tmf.service(state="reserved", operatingStatus="pending"))
    sent = harness.upsert(tmf.service(state="active", operatingStatus="running"))
    assert sent.names == ["ServiceStateChangeEvent", "ServiceOperatingStatusChangeEvent"]


def test_v4_operating_status_is_an_ordinary_attribute(harness, tmf):
    harness.upsert(tmf.service(operatingStatus="running"))
    sent = harness.upsert(tmf.service(operatingStatus="degraded"))
    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    assert sent.event.body["fieldPath"] == "operatingStatus"


def test_v5_resource_has_no_operating_status_event(make_harness, tmf):
    harness = make_harness(tmf_version="v5")
    harness.upsert(tmf.resource(operatingStatus="running"), entity="resource")
    sent = harness.upsert(tmf.resource(operatingStatus="degraded"), entity="resource")
    assert sent.names == ["ResourceAttributeValueChangeEvent"]


# --------------------------------------------------------------------------------------
# delete


def test_delete_with_live_state_emits_delete_with_id_href_type_only(harness, tmf):
    create = harness.upsert(tmf.service(**{"@type": "BroadbandService"})).event
    sent = harness.delete("svc-1")

    assert sent.names == ["ServiceDeleteEvent"]
    event = sent.event
    assert event.payload == {
        "id": "svc-1",
        "href": "/tmf-api/serviceInventory/v4/service/svc-1",
        "@type": "BroadbandService",
    }
    assert event.version == 2
    assert event.previous == create.id
    state = harness.state("svc-1")
    assert state is not None
    assert state.deleted and state.version == 2
    assert state.last_event_id == event.id
    assert state.hash == b""


def test_delete_payload_defaults_type_and_omits_missing_href(harness, tmf):
    harness.upsert(tmf.service(href=tmf.DROP))
    event = harness.delete("svc-1").event
    assert event.payload == {"id": "svc-1", "@type": "Service"}


def test_delete_record_may_carry_the_instance(harness, tmf):
    harness.upsert(tmf.service())
    sent = harness.send(harness.change(tmf.service(name="gone"), operation="delete"), key="svc-1")
    assert sent.names == ["ServiceDeleteEvent"]
    assert set(sent.event.payload) == {"id", "href", "@type"}


def test_tombstone_is_a_delete_at_the_record_timestamp(harness, tmf):
    harness.upsert(tmf.resource(), entity="resource", at=tmf.at(0))
    sent = harness.tombstone("res-1", timestamp=tmf.T0_MS + 5_123)

    assert sent.names == ["ResourceDeleteEvent"]
    event = sent.event
    assert event.topic == "tmf.resource.events"  # the entity type comes from the state
    assert event.body["eventTime"] == format_ms(tmf.T0_MS + 5_123)
    assert event.headers["ce_time"] == "2026-01-01T10:00:05.123Z"
    assert event.payload == {
        "id": "res-1",
        "href": "/tmf-api/resourceInventoryManagement/v4/resource/res-1",
        "@type": "PhysicalResource",
    }


@pytest.mark.parametrize("how", ["delete", "tombstone"])
def test_delete_of_an_unknown_instance_is_unknown_delete(harness, how):
    sent = harness.delete("nobody") if how == "delete" else harness.tombstone("nobody")
    assert sent.outcome == "unknown_delete"
    assert sent.messages == []
    assert harness.state("nobody") is None


def test_delete_of_a_deleted_instance_is_unknown_delete(harness, tmf):
    harness.upsert(tmf.service())
    harness.delete("svc-1")
    again = harness.delete("svc-1")
    assert again.outcome == "unknown_delete"
    assert again.messages == []
    assert harness.state("svc-1").version == 2


# --------------------------------------------------------------------------------------
# stale


def test_older_upsert_is_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    sent = harness.upsert(tmf.service(name="late news"), at=tmf.at(9.999))
    assert sent.outcome == "stale"
    assert sent.messages == []
    assert harness.state("svc-1").version == 1


def test_upsert_at_the_same_time_is_not_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    sent = harness.upsert(tmf.service(name="same instant"), at=tmf.at(10))
    assert sent.names == ["ServiceAttributeValueChangeEvent"]


def test_older_delete_is_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    sent = harness.delete("svc-1", at=tmf.at(9))
    assert sent.outcome == "stale"
    assert sent.messages == []
    assert not harness.state("svc-1").deleted


def test_delete_at_the_same_time_is_not_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    assert harness.delete("svc-1", at=tmf.at(10)).names == ["ServiceDeleteEvent"]


def test_older_tombstone_is_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    sent = harness.tombstone("svc-1", timestamp=tmf.T0_MS + 9_000)
    assert sent.outcome == "stale"


def test_re_create_older_than_the_delete_is_stale(harness, tmf):
    harness.upsert(tmf.service(), at=tmf.at(10))
    harness.delete("svc-1", at=tmf.at(20))
    sent = harness.upsert(tmf.service(), at=tmf.at(15))
    assert sent.outcome == "stale"
    assert harness.state("svc-1").deleted


def test_time_comes_from_the_record_timestamp_without_observed_at(harness, tmf):
    harness.send(harness.change(tmf.service()), timestamp=tmf.T0_MS + 10_000)
    late = harness.send(harness.change(tmf.service(name="x")), timestamp=tmf.T0_MS + 9_000)
    assert late.outcome == "stale"


# --------------------------------------------------------------------------------------
# replayed


def test_record_at_or_below_the_state_offset_is_replayed(harness, tmf):
    harness.upsert(tmf.service(), offset=5)
    same = harness.upsert(tmf.service(name="changed"), offset=5)
    lower = harness.upsert(tmf.service(name="changed"), offset=3)
    higher = harness.upsert(tmf.service(name="changed"), offset=6)

    assert same.outcome == "replayed" and same.messages == []
    assert lower.outcome == "replayed" and lower.messages == []
    assert higher.names == ["ServiceAttributeValueChangeEvent"]


def test_replayed_delete_and_tombstone(harness, tmf):
    harness.upsert(tmf.service(), offset=5)
    assert harness.delete("svc-1", offset=5).outcome == "replayed"
    assert harness.tombstone("svc-1", offset=4).outcome == "replayed"


def test_state_is_per_partition(harness, tmf):
    harness.upsert(tmf.service(), partition=0, offset=5)
    other = harness.upsert(tmf.service(), partition=1, offset=0)
    assert other.names == ["ServiceCreateEvent"]


# --------------------------------------------------------------------------------------
# disabled entity types


def test_switched_off_entity_type_emits_nothing(make_harness, tmf):
    harness = make_harness(entity_types=["service"])
    sent = harness.upsert(tmf.resource(), entity="resource")
    assert sent.outcome == "disabled"
    assert sent.messages == []
    assert harness.state("res-1") is None
    assert harness.upsert(tmf.service()).names == ["ServiceCreateEvent"]


def test_switched_off_entity_type_disables_its_tombstones_and_deletes():
    policy = Policy.build([], DEFAULT_STATE_FIELDS["v4"], ["service"], "v4")
    state = _state("resource")
    tombstone = Change("r", None, "delete", 2_000, None, None, None)
    delete = Change("r", "resource", "delete", 2_000, None, None, None)
    assert decide(state, tombstone, 10, policy).outcome == "disabled"
    assert decide(state, delete, 10, policy).outcome == "disabled"
    assert decide(None, delete, 10, policy).outcome == "disabled"


# --------------------------------------------------------------------------------------
# entity type mismatch


def test_entity_type_differing_from_the_stored_one_is_a_dead_letter(harness, tmf):
    harness.upsert(tmf.service(sid="x-1"))
    sent = harness.upsert(tmf.resource(rid="x-1"), entity="resource")

    assert sent.outcome == "dead_letter"
    assert sent.reason == "entity_type_mismatch"
    letter = sent.dead_letter
    assert letter.topic == "tmf-events-dlq"
    assert dict(letter.headers)["tmf-events-error"] == b"entity_type_mismatch"
    assert letter.value == sent.record.value
    state = harness.state("x-1")
    assert state is not None and state.entity_type == "service" and state.version == 1


def test_entity_type_mismatch_also_after_delete(harness, tmf):
    harness.upsert(tmf.service(sid="x-1"))
    harness.delete("x-1")
    sent = harness.upsert(tmf.resource(rid="x-1"), entity="resource")
    assert sent.reason == "entity_type_mismatch"


def test_decide_precedence_mismatch_then_replayed_then_stale():
    policy = Policy.build([], DEFAULT_STATE_FIELDS["v4"], ["service", "resource"], "v4")
    state = _state("service", observed_at=5_000, offset=10)
    older = Change("r", "service", "upsert", 1_000, None, {"id": "r", "x": 1}, None)
    other_type = Change("r", "resource", "upsert", 9_000, None, {"id": "r"}, None)
    assert decide(state, other_type, 3, policy).outcome == "mismatch"
    assert decide(state, older, 10, policy).outcome == "replayed"
    assert decide(state, older, 11, policy).outcome == "stale"


# --------------------------------------------------------------------------------------
# private fields

PRIVATE = ["note", "billing.account", "serviceCharacteristic.secret", "matrix.secret"]


def _private_instance(**attrs):
    instance = {
        "id": "svc-p",
        "href": "/s/svc-p",
        "name": "VPN",
        "state": "active",
        "note": "PRIVATE-top",
        "billing": {"account": "PRIVATE-account", "plan": "gold"},
        "serviceCharacteristic": [
            {"name": "speed", "value": "1G", "secret": "PRIVATE-char-1"},
            {"name": "vlan", "value": 42},
        ],
        "matrix": [[{"secret": "PRIVATE-deep", "cell": 1}], [{"cell": 2}]],
    }
    instance.update(attrs)
    return instance


def test_private_fields_are_removed_before_hashing_and_never_emitted(make_harness):
    harness = make_harness(private_fields=PRIVATE)
    event = harness.upsert(_private_instance()).event

    assert event.payload == {
        "id": "svc-p",
        "href": "/s/svc-p",
        "name": "VPN",
        "state": "active",
        "billing": {"plan": "gold"},
        "serviceCharacteristic": [
            {"name": "speed", "value": "1G"},
            {"name": "vlan", "value": 42},
        ],
        "matrix": [[{"cell": 1}], [{"cell": 2}]],
    }
    assert b"PRIVATE" not in event.message.value
    assert all(b"PRIVATE" not in (v or b"") for _, v in event.message.headers)
    state = harness.state("svc-p")
    assert state.hash == digest(rendering(event.payload))
    assert b"PRIVATE" not in encode_state(state)  # nor in the changelog


def test_a_private_only_change_emits_nothing(make_harness):
    harness = make_harness(private_fields=PRIVATE)
    harness.upsert(_private_instance())
    sent = harness.upsert(
        _private_instance(
            note="PRIVATE-changed",
            billing={"account": "PRIVATE-other", "plan": "gold"},
            serviceCharacteristic=[
                {"name": "speed", "value": "1G"},  # its secret removed
                {"name": "vlan", "value": 42, "secret": "PRIVATE-new"},
            ],
        )
    )
    assert sent.outcome == "unchanged"
    assert sent.messages == []


def test_a_mixed_change_names_only_public_attributes(make_harness):
    harness = make_harness(private_fields=PRIVATE)
    harness.upsert(_private_instance())
    sent = harness.upsert(
        _private_instance(note="PRIVATE-changed", billing={"account": "x", "plan": "silver"})
    )
    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    assert sent.event.body["fieldPath"] == "billing"
    assert b"PRIVATE" not in sent.event.message.value


def test_private_path_through_a_non_object_is_left_alone(make_harness):
    harness = make_harness(private_fields=["billing.account"])
    event = harness.upsert({"id": "s", "billing": "flat", "list": [1, 2]}).event
    assert event.payload == {"id": "s", "billing": "flat", "list": [1, 2]}


# --------------------------------------------------------------------------------------
# state fields

V4_RESOURCE_STATES = {
    "resourceStatus": ("available", "reserved"),
    "operationalState": ("enable", "disable"),
    "administrativeState": ("unlocked", "locked"),
    "usageState": ("idle", "busy"),
}
V5_RESOURCE_STATES = {
    "operationalState": ("enabled", "disabled"),
    "administrativeState": ("unlocked", "shuttingDown"),
    "usageState": ("idle", "busy"),
    "lifecycleState": ("planned", "installed"),
    "alarmStatus": (["minor"], ["major", "alarmOutstanding"]),
    "proceduralStatus": ("initializing", "reporting"),
    "availabilityStatus": ("online", "degraded"),
    "controlStatus": ("reservedForTest", "suspended"),
    "unknownStatus": (True, False),
    "allocationStatus": ("free", "allocated"),
    "standbyStatus": ("hotStandby", "providingService"),
    "powerConsumingState": ("fullPower", "sleeping"),
}


def test_default_state_fields_are_the_documented_ones(make_harness):
    v4 = make_harness().settings.state_fields
    v5 = make_harness(tmf_version="v5").settings.state_fields
    assert v4 == {"service": ["state"], "resource": list(V4_RESOURCE_STATES)}
    assert v5 == {"service": ["state", "operatingStatus"], "resource": list(V5_RESOURCE_STATES)}


@pytest.mark.parametrize("field", list(V4_RESOURCE_STATES))
def test_v4_resource_state_fields_give_state_changes(make_harness, tmf, field):
    before, after = V4_RESOURCE_STATES[field]
    harness = make_harness()
    harness.upsert(tmf.resource(**{field: before}), entity="resource")
    sent = harness.upsert(tmf.resource(**{field: after}), entity="resource")
    assert sent.names == ["ResourceStateChangeEvent"]
    assert sent.event.payload[field] == after


@pytest.mark.parametrize("field", list(V5_RESOURCE_STATES))
def test_v5_resource_state_fields_give_state_changes(make_harness, tmf, field):
    before, after = V5_RESOURCE_STATES[field]
    harness = make_harness(tmf_version="v5")
    harness.upsert(tmf.resource(**{field: before}), entity="resource")
    sent = harness.upsert(tmf.resource(**{field: after}), entity="resource")
    assert sent.names == ["ResourceStateChangeEvent"]


@pytest.mark.parametrize(
    ("version", "field", "before", "after"),
    [
        ("v4", "lifecycleState", "planned", "installed"),  # a state field only in v5
        ("v5", "resourceStatus", "available", "reserved"),  # a state field only in v4
    ],
)
def test_state_fields_of_the_other_profile_are_attributes(
    make_harness, tmf, version, field, before, after
):
    harness = make_harness(tmf_version=version)
    harness.upsert(tmf.resource(**{field: before}), entity="resource")
    sent = harness.upsert(tmf.resource(**{field: after}), entity="resource")
    assert sent.names == ["ResourceAttributeValueChangeEvent"]


def test_removing_a_state_field_is_a_state_change(harness, tmf):
    harness.upsert(tmf.service(state="active"))
    sent = harness.upsert(tmf.service(state=tmf.DROP))
    assert sent.names == ["ServiceStateChangeEvent"]
    assert "state" not in sent.event.payload


def test_state_fields_are_configurable(make_harness, tmf):
    harness = make_harness(state_fields={"service": ["state", "category"]})
    harness.upsert(tmf.service())
    assert harness.upsert(tmf.service(category="RFS")).names == ["ServiceStateChangeEvent"]
    # resource keeps its defaults
    assert harness.settings.state_fields["resource"] == list(V4_RESOURCE_STATES)


def test_no_state_fields_makes_every_change_an_attribute_change(make_harness, tmf):
    harness = make_harness(state_fields={"service": []})
    harness.upsert(tmf.service(state="designed"))
    sent = harness.upsert(tmf.service(state="active"))
    assert sent.names == ["ServiceAttributeValueChangeEvent"]
    assert sent.event.body["fieldPath"] == "state"


def test_v5_operating_status_as_attribute_when_not_a_state_field(make_harness, tmf):
    harness = make_harness(tmf_version="v5", state_fields={"service": ["state"]})
    harness.upsert(tmf.service(operatingStatus="running"))
    sent = harness.upsert(tmf.service(operatingStatus="stopped", state="active"))
    assert sent.names == ["ServiceAttributeValueChangeEvent", "ServiceStateChangeEvent"]
    assert "fieldPath" not in sent.events[0].body


# --------------------------------------------------------------------------------------
# the state record


def test_state_survives_the_avro_changelog_encoding(make_harness, tmf):
    harness = make_harness(history=3)
    harness.upsert(tmf.service(), headers=[("traceparent", b"00-" + b"a" * 32 + b"-b-01")])
    harness.upsert(tmf.service(name="renamed", state="active"))
    state = harness.state("svc-1")
    assert state is not None and len(state.events) == 3
    assert decode_state(encode_state(state)) == state

    harness.delete("svc-1")
    deleted = harness.state("svc-1")
    assert decode_state(encode_state(deleted)) == deleted


def test_history_keeps_the_latest_events_newest_first(make_harness, tmf):
    harness = make_harness(history=2)
    harness.upsert(tmf.service())
    avc, sc = harness.upsert(tmf.service(name="renamed", state="active")).events
    state = harness.state("svc-1")
    assert [(e.id, e.type) for e in state.events] == [
        (sc.id, "ServiceStateChangeEvent"),
        (avc.id, "ServiceAttributeValueChangeEvent"),
    ]


def _state(entity_type: str, *, observed_at: int = 1_000, offset: int = 0) -> State:
    """A live state as decide leaves it after creating instance `r` at `observed_at`."""
    policy = Policy.build([], DEFAULT_STATE_FIELDS["v4"], ["service", "resource"], "v4")
    create = Change("r", entity_type, "upsert", observed_at, None, {"id": "r", "x": 0}, None)
    state = decide(None, create, offset, policy).state
    assert state is not None
    return state


# --------------------------------------------------------------------------------------
# member names the joined attribute list cannot tell apart ("" alone, names with a NUL)
#
# With `id` private a Create event lacks the id the event schema requires, so these run a
# task directly rather than through the schema-checking harness.


def _updates(*instances: dict[str, object]) -> list[Result]:
    task = new_task(make_settings(private_fields=["id"], payload="delta"), native=False)
    results = []
    for offset, instance in enumerate(instances):
        value = orjson.dumps({"entityType": "service", "instance": instance})
        record = InputRecord("in", 0, offset, 1_767_261_600_000 + offset, b"svc-1", value, [])
        results.append(task.process(record))
        task.commit()
    return results


def _body(result: Result) -> dict[str, Any]:
    (message,) = result.messages
    body: dict[str, Any] = orjson.loads(message.value or b"")
    return body


def test_a_change_of_the_only_public_member_with_an_empty_name_fires_an_event():
    """{"": 1} → {"": 2} joins to the same attribute list "" as no member at all: it used to
    plan no event and fail (IndexError in the core) instead of emitting one."""
    _, changed = _updates({"id": "svc-1", "": 1}, {"id": "svc-1", "": 2})
    assert changed.event_types == ("ServiceAttributeValueChangeEvent",)
    body = _body(changed)
    assert body["fieldPath"] == ""
    assert body["event"]["service"] == {"id": "svc-1", "@type": "Service", "": 2}


def test_removing_the_only_public_member_with_an_empty_name_fires_an_event():
    """{"": 1} → {}: equal attribute lists, fingerprints of different lengths."""
    _, removed = _updates({"id": "svc-1", "": 1}, {"id": "svc-1"})
    assert removed.event_types == ("ServiceAttributeValueChangeEvent",)
    assert _body(removed)["event"]["service"] == {"id": "svc-1", "@type": "Service", "": None}


def test_a_name_with_a_nul_in_it_still_fires_its_events():
    _, changed = _updates({"id": "svc-1", "a\0b": 1}, {"id": "svc-1", "a\0b": 2})
    assert changed.event_types == ("ServiceAttributeValueChangeEvent",)
    assert _body(changed)["event"]["service"]["a\0b"] == 2


def test_a_moved_digest_over_no_attribute_at_all_still_fires_one_event():
    """A state whose hash is not the empty instance's, for an instance with no public member:
    one attribute change naming nothing, never no event."""
    policy = Policy.build(["id"], {"service": ["state"]}, ["service"], "v4")
    state = State("service", 1, b"\x01" * 16, "", b"", False, 0, 0, None, None, None, None, None)
    change = Change("svc-1", "service", "upsert", 1, None, {"id": "svc-1"}, None)
    decision = decide(state, change, 1, policy)
    assert decision.outcome == "emit"
    assert [p.kind for p in decision.events] == ["AttributeValueChange"]
    assert decision.events[0].changed == ()
