"""The TMF notification hub (`tmf-events hub`) on a real broker, with real HTTP listeners.

The processor (in a thread) turns change records into events on the output topics; the hub
runs as a child process; listeners are HTTP servers of the test (tests/listeners.py). What a
listener gets is compared with what the output topics hold (read_committed): the same
events, the same bytes, the CloudEvents attributes as `ce-*` headers, in order per subject.

Timings are shortened through settings (retries from 50 ms, pause after 2 s of failure,
probes every 300 ms, 1 s request timeout): the listener outage lasts a few seconds instead
of 30 (`RELIABILITY_PROFILE=long` keeps it down 30 s); what it shows is the same — a
listener that is down long enough to be paused gets everything it missed, in order.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from processor.config import Settings
from processor.dev.synthetic import rfc3339_ms
from processor.hub.routes import schema_path
from processor.topics import ensure_topics
from tests.hub_process import RESOURCE_HUB, SERVICE_HUB, HubProcess
from tests.kafka_helpers import Broker, Record, consume_all, wait_until
from tests.listeners import Listener, Received
from tests.loads import ENDLESS, PacedProducer, synthetic
from tests.processes import (
    ProcessorThread,
    Send,
    end_offsets,
    processor_fields,
    read_input,
    run_cli,
    send,
    wait_consumed,
)

UniqueName = Callable[[str], str]
SECRET = "listener-shared-secret"
LONG = os.environ.get("RELIABILITY_PROFILE", "short").strip().lower() == "long"
T0_MS = 1_767_261_600_000
_clock = itertools.count(1)


def hub_fields(bootstrap: str, name: str) -> dict[str, Any]:
    return processor_fields(
        bootstrap,
        name,
        hub_allowed_callback_hosts=["127.0.0.0/8"],
        hub_signing_secret=SECRET,
        hub_retry_initial_ms=50,
        hub_retry_max_ms=500,
        hub_pause_after_ms=2000,
        hub_probe_interval_ms=300,
        hub_request_timeout_ms=1000,
        hub_position_interval_ms=100,
    )


@dataclass
class Stack:
    name: str
    bootstrap: str
    fields: dict[str, Any]
    processor: ProcessorThread
    hub: HubProcess

    @property
    def settings(self) -> Settings:
        return self.processor.settings

    def changes(self, records: list[Send]) -> None:
        """Send change records and wait until the processor has consumed them all."""
        send(self.bootstrap, self.settings.input_topic, records)
        ends = end_offsets(read_input(self.bootstrap, self.settings.input_topic))
        wait_consumed(self.bootstrap, self.name, self.settings.input_topic, ends)

    def events(self) -> list[Record]:
        """Every event on the output topics, read_committed, by topic, partition, offset."""
        topics = [self.settings.service_topic, self.settings.resource_topic]
        return consume_all(self.bootstrap, topics, timeout=60)


def start_stack(broker: Broker, name: str, tmp: Path) -> Stack:
    fields = hub_fields(broker.bootstrap_servers, name)
    ensure_topics(Settings(**fields), partitions=2)
    processor = ProcessorThread(fields).start()
    processor.wait_ready()
    hub = HubProcess(fields, tmp / f"{name}.log").start().wait_ready()
    return Stack(name, broker.bootstrap_servers, fields, processor, hub)


@pytest.fixture(scope="module")
def stack(noida_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.kafka_helpers import unique_name

    s = start_stack(noida_broker, unique_name("hub"), tmp_path_factory.mktemp("hub"))
    try:
        yield s
    finally:
        s.hub.close()
        s.processor.stop()


# -- change records ----------------------------------------------------------------------------


def change(entity: str, instance: dict[str, Any], operation: str = "upsert") -> Send:
    value: dict[str, Any] = {
        "entityType": entity,
        "operation": operation,
        "observedAt": rfc3339_ms(T0_MS + next(_clock) * 1000),
    }
    if operation == "delete":
        value["id"] = instance["id"]
    else:
        value["instance"] = instance
    return Send(instance["id"].encode(), orjson.dumps(value))


def service_story(sid: str) -> list[Send]:
    """Create, state changes, an attribute change and a delete of one service."""
    base = {"id": sid, "href": f"/tmf-api/serviceInventory/v4/service/{sid}", "name": "Fibre"}
    return [
        change("service", {**base, "state": "designed"}),
        change("service", {**base, "state": "active"}),
        change("service", {**base, "state": "active", "name": "Fibre 1G"}),
        change("service", {**base, "state": "inactive", "name": "Fibre 1G"}),
        change("service", {**base, "state": "active", "name": "Fibre 1G"}),
        change("service", base, "delete"),
    ]


def resource_story(rid: str) -> list[Send]:
    base = {"id": rid, "href": f"/tmf-api/resourceInventoryManagement/v4/resource/{rid}"}
    return [
        change("resource", {**base, "resourceStatus": "standby"}),
        change("resource", {**base, "resourceStatus": "alarm"}),
        change("resource", {**base, "resourceStatus": "alarm", "name": "port 9"}),
        change("resource", {**base, "resourceStatus": "available", "name": "port 9"}),
        change("resource", {**base, "resourceStatus": "alarm", "name": "port 9"}),
    ]


def history(tag: str, services: int = 4, resources: int = 3) -> list[Send]:
    """Stories interleaved round-robin, so partitions and subjects interleave too."""
    stories = [service_story(f"svc-{tag}-{i}") for i in range(services)]
    stories += [resource_story(f"res-{tag}-{i}") for i in range(resources)]
    out: list[Send] = []
    for step in itertools.zip_longest(*stories):
        out += [s for s in step if s is not None]
    return out


# -- comparing what arrived with Kafka ----------------------------------------------------------


def event_json(record: Record) -> dict[str, Any]:
    assert record.value is not None
    doc: dict[str, Any] = orjson.loads(record.value)
    return doc


def by_subject(ids: list[str], records: dict[str, Record]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for ce_id in ids:
        out[records[ce_id].key.decode()].append(ce_id)  # type: ignore[union-attr]
    return dict(out)


def assert_delivered_like_kafka(
    listener: Listener, expected: list[Record], *, copies_allowed: bool = False
) -> int:
    """The listener got exactly the `expected` events (Kafka order), in order per subject,
    byte-equal, with their attributes as headers; returns the number of copies."""
    records = {r.header("ce_id").decode(): r for r in expected}  # type: ignore[union-attr]
    got = listener.requests()
    distinct = listener.distinct_ids()
    assert set(distinct) == set(records), (
        f"missing {sorted(set(records) - set(distinct))[:5]}, "
        f"unexpected {sorted(set(distinct) - set(records))[:5]}"
    )
    want_order = [r.header("ce_id").decode() for r in expected]  # type: ignore[union-attr]
    assert by_subject(distinct, records) == by_subject(want_order, records)
    copies = len(got) - len(distinct)
    if not copies_allowed:
        assert copies == 0, f"{copies} copies"
    for request in got:
        check_request(request, records[request.ce_id])
    return copies


def check_request(request: Received, record: Record) -> None:
    event = event_json(record)
    name = event["eventType"][0].lower() + event["eventType"][1:]
    assert request.path == f"/cb/listener/{name}"
    assert request.body == record.value  # the same bytes as the Kafka value
    for key, value in record.headers:
        if key.startswith("ce_") and value is not None:
            assert request.headers[f"ce-{key[3:]}"] == value.decode(), key
    assert request.headers["content-type"] == record.header("content-type").decode()  # type: ignore[union-attr]
    digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == f"sha256={digest}"


def new_events(stack: Stack, before: set[str]) -> list[Record]:
    return [r for r in stack.events() if r.header("ce_id").decode() not in before]  # type: ignore[union-attr]


def ids_of(records: list[Record]) -> set[str]:
    return {r.header("ce_id").decode() for r in records}  # type: ignore[union-attr]


def wait_delivered(
    stack: Stack, listener: Listener, expected: list[Record], timeout: float = 60
) -> None:
    want = ids_of(expected)
    wait_until(
        lambda: want <= set(listener.ids()),
        timeout,
        0.1,
        lambda: (
            f"listener got {len(set(listener.ids()) & want)}/{len(want)}; hub log:\n"
            + stack.hub.log()[-3000:]
        ),
    )


def wait_idle(stack: Stack, sub_ids: list[str]) -> None:
    """Until the hub has nothing left to deliver for these subscriptions."""
    wait_until(
        lambda: all(
            stack.hub.metric("tmf_events_hub_backlog_records", subscription=s) == 0 for s in sub_ids
        ),
        30,
        0.2,
        "backlog not 0",
    )


# -- the tests ----------------------------------------------------------------------------------


def test_listeners_get_exactly_the_matching_events_in_order(stack: Stack) -> None:
    stack.changes(history("before"))  # events before registration: never delivered
    before = ids_of(stack.events())
    queries: dict[str, tuple[str, str | None, Callable[[dict[str, Any]], bool]]] = {
        "all": (SERVICE_HUB, None, lambda e: e["eventType"].startswith("Service")),
        "state-or-delete": (
            SERVICE_HUB,
            "eventType=ServiceStateChangeEvent,ServiceDeleteEvent",
            lambda e: e["eventType"] in ("ServiceStateChangeEvent", "ServiceDeleteEvent"),
        ),
        "active": (
            SERVICE_HUB,
            "event.service.state=active",
            lambda e: e["event"].get("service", {}).get("state") == "active",
        ),
        "alarm": (
            RESOURCE_HUB,
            "eventType=ResourceStateChangeEvent&event.resource.resourceStatus=alarm",
            lambda e: (
                e["eventType"] == "ResourceStateChangeEvent"
                and e["event"]["resource"].get("resourceStatus") == "alarm"
            ),
        ),
    }
    answer_schema = Draft202012Validator(
        orjson.loads(Path(schema_path("v4", "EventSubscription")).read_bytes())
    )
    listeners = {name: Listener().start() for name in queries}
    try:
        subs: dict[str, str] = {}
        for name, (hub, query, _) in queries.items():
            body = {"callback": f"{listeners[name].url}/cb"}
            if query is not None:
                body["query"] = query
            status, headers, doc = stack.hub.call("POST", hub, body)
            assert status == 201, doc
            assert not list(answer_schema.iter_errors(doc))
            assert headers["Location"] == f"{hub}/{doc['id']}"
            status, _, shown = stack.hub.call("GET", headers["Location"])
            assert status == 200 and not list(answer_schema.iter_errors(shown))
            assert shown["delivery"]["state"] == "active"
            subs[name] = doc["id"]

        stack.changes(history("after"))
        fresh = new_events(stack, before)
        assert len(fresh) > 30
        for name, (_, _, wanted) in queries.items():
            expected = [r for r in fresh if wanted(event_json(r))]
            assert expected, name
            wait_delivered(stack, listeners[name], expected)
        wait_idle(stack, list(subs.values()))
        for name, (_, _, wanted) in queries.items():
            expected = [r for r in fresh if wanted(event_json(r))]
            assert_delivered_like_kafka(listeners[name], expected)
        total = sum(len(listener.requests()) for listener in listeners.values())
        assert stack.hub.metric("tmf_events_hub_deliveries_total", outcome="delivered") >= total
    finally:
        for name, listener in listeners.items():
            listener.down()
            stack.hub.call("DELETE", f"{queries[name][0]}/{subs.get(name, 'x')}")


def test_a_listener_down_gets_everything_it_missed_in_order(stack: Stack) -> None:
    before = ids_of(stack.events())
    listener = Listener().start()
    sub = stack.hub.register(f"{listener.url}/cb")
    try:
        stack.changes(history("up", services=2, resources=0))
        first = new_events(stack, before)
        wait_delivered(stack, listener, first)

        listener.down()
        stack.changes(history("down", services=2, resources=0))

        def paused() -> bool:
            status, _, doc = stack.hub.call("GET", f"{SERVICE_HUB}/{sub}")
            return status == 200 and doc["delivery"]["state"] == "paused"

        wait_until(paused, 30, 0.1, "subscription not paused")
        _, _, doc = stack.hub.call("GET", f"{SERVICE_HUB}/{sub}")
        assert (
            "pausedSince" in doc["delivery"] and "ConnectionRefused" in doc["delivery"]["lastError"]
        )
        wait_counted_and_logged(stack, sub, "paused", 1)
        stack.changes(history("paused", services=2, resources=0))  # more while paused
        if LONG:
            threading.Event().wait(30)  # the outage itself, not a synchronisation

        listener.start()
        everything = [r for r in new_events(stack, before) if r.topic.endswith("service.events")]
        wait_delivered(stack, listener, everything, timeout=60)
        wait_idle(stack, [sub])
        assert_delivered_like_kafka(listener, everything)  # nothing lost, no copy, in order
        wait_until(lambda: not paused(), 10, 0.1, "still shown paused")
        wait_counted_and_logged(stack, sub, "resumed", 0)
        assert stack.hub.metric("tmf_events_hub_retries_total", entity_type="service") > 0
    finally:
        listener.down()
        stack.hub.call("DELETE", f"{SERVICE_HUB}/{sub}")


def wait_counted_and_logged(stack: Stack, sub: str, change: str, paused: int) -> None:
    """The worker counts and logs a pause or a resumption right after a GET shows it."""
    wait_until(
        lambda: (
            stack.hub.metric("tmf_events_hub_paused_subscriptions") == paused
            and f"subscription {sub} {change}" in stack.hub.log()
        ),
        10,
        0.05,
        f"subscription {change}: not counted and logged",
    )


def test_a_hanging_listener_does_not_hold_back_the_others(stack: Stack) -> None:
    before = ids_of(stack.events())
    fast = [Listener().start(), Listener().start()]
    hanging = Listener().start()
    hanging.hang()
    subs = [stack.hub.register(f"{x.url}/cb") for x in [*fast, hanging]]
    try:
        stack.changes(history("hang", services=3, resources=0))
        expected = [r for r in new_events(stack, before) if r.topic.endswith("service.events")]
        for listener in fast:
            wait_delivered(stack, listener, expected)
        wait_idle(stack, subs[:2])
        # Everything reached the two others while the third has not answered once.
        assert hanging.hanging.is_set()
        assert len(set(hanging.ids())) <= 1
        wait_until(
            lambda: stack.hub.metric("tmf_events_hub_backlog_records", subscription=subs[2]) > 0,
            30,
            0.1,
            "the hanging subscription shows no backlog",
        )
        assert len(set(hanging.ids())) <= 1
        for listener in fast:
            assert_delivered_like_kafka(listener, expected)

        hanging.release()
        wait_delivered(stack, hanging, expected)
        wait_idle(stack, subs[2:])
        # A request that timed out was sent again: a copy the hub counts as uncertain.
        copies = assert_delivered_like_kafka(hanging, expected, copies_allowed=True)
        assert stack.hub.metric("tmf_events_hub_uncertain_deliveries_total") >= copies
    finally:
        hanging.release()
        for listener, sub in zip([*fast, hanging], subs, strict=True):
            listener.down()
            stack.hub.call("DELETE", f"{SERVICE_HUB}/{sub}")


def test_unregister_stops_delivery(stack: Stack) -> None:
    before = ids_of(stack.events())
    leaving, staying = Listener().start(), Listener().start()
    gone = stack.hub.register(f"{leaving.url}/cb")
    kept = stack.hub.register(f"{staying.url}/cb")
    try:
        stack.changes(history("both", services=1, resources=0))
        first = new_events(stack, before)
        wait_delivered(stack, leaving, first)
        wait_delivered(stack, staying, first)

        assert stack.hub.call("DELETE", f"{SERVICE_HUB}/{gone}")[0] == 204
        assert stack.hub.call("GET", f"{SERVICE_HUB}/{gone}")[0] == 404
        assert stack.hub.call("DELETE", f"{SERVICE_HUB}/{gone}")[0] == 404
        received = len(leaving.requests())

        stack.changes(history("one", services=2, resources=0))
        later = [
            r
            for r in new_events(stack, before | ids_of(first))
            if r.topic.endswith("service.events")
        ]
        wait_delivered(stack, staying, later)
        wait_idle(stack, [kept])
        assert len(leaving.requests()) == received
        assert not ids_of(later) & set(leaving.ids())
    finally:
        leaving.down()
        staying.down()
        stack.hub.call("DELETE", f"{SERVICE_HUB}/{kept}")


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"callback": "ftp://127.0.0.1/cb"}, 400, "scheme must be http or https"),
        ({"callback": "http://10.1.2.3/cb"}, 400, "private address"),
        ({"callback": "http://169.254.169.254/latest"}, 400, "link-local address"),
        ({"callback": "http://[::1]:9/cb"}, 400, "loopback address"),  # only 127/8 allowed
        (
            {"callback": "http://127.0.0.1:9/cb", "query": "eventType=ResourceCreateEvent"},
            400,
            "not a service event",
        ),
        (
            {"callback": "http://127.0.0.1:9/cb", "query": "event.service.state>active"},
            400,
            "only equality",
        ),
        ({"callback": "http://127.0.0.1:9/cb", "query": "fields=id,state"}, 400, "not supported"),
        ({"query": "eventType=ServiceCreateEvent"}, 400, "'callback' is a required property"),
        ({"callback": "http://127.0.0.1:9/cb", "junk": "x" * 70_000}, 413, "at most"),
    ],
)
def test_bad_callbacks_and_queries_are_refused(
    stack: Stack, body: dict[str, Any], status: int, detail: str
) -> None:
    # Counted on the request's path (the subscriptions gauge follows the hub topic later, so
    # an earlier test's unregistering may still be on its way to it).
    created = {"operation": "register", "outcome": "created"}
    before = stack.hub.metric("tmf_events_hub_registrations_total", **created)
    got, headers, doc = stack.hub.call("POST", SERVICE_HUB, body)
    assert got == status
    assert headers["Content-Type"] == "application/problem+json"
    assert doc["status"] == status and detail in doc["detail"]
    assert stack.hub.metric("tmf_events_hub_registrations_total", **created) == before
    assert stack.hub.call("GET", f"{SERVICE_HUB}/no-such-id")[0] == 404
    assert stack.hub.call("DELETE", f"{SERVICE_HUB}/no-such-id")[0] == 404


def test_hub_killed_mid_delivery_loses_nothing(
    noida_broker: Broker, unique_name: UniqueName, tmp_path: Path
) -> None:
    s = start_stack(noida_broker, unique_name("hub-kill"), tmp_path)
    listener = Listener().start()
    load: PacedProducer | None = None
    try:
        s.hub.register(f"{listener.url}/cb")  # before any event: all of them are due
        load = PacedProducer(s.bootstrap, s.settings.input_topic, synthetic(14, ENDLESS, 40), 150)
        load.start()
        wait_until(lambda: len(listener.requests()) >= 60, 60, 0.05, "no deliveries")
        s.hub.kill()  # SIGKILL in the middle of the deliveries
        killed_at = len(listener.requests())
        s.hub.start().wait_ready()
        wait_until(lambda: len(listener.requests()) >= killed_at + 60, 60, 0.05, "no more")
        load.finish()
        load = None
        ends = end_offsets(read_input(s.bootstrap, s.settings.input_topic))
        wait_consumed(s.bootstrap, s.name, s.settings.input_topic, ends)
        expected = [r for r in s.events() if r.topic == s.settings.service_topic]
        wait_delivered(s, listener, expected, timeout=90)
        copies = assert_delivered_like_kafka(listener, expected, copies_allowed=True)
        print(f"\nkill -9: {len(expected)} events, {copies} copies re-delivered after the restart")
    finally:
        if load is not None:
            load.stop()
        listener.down()
        s.hub.close()
        s.processor.stop()


def test_two_replicas_share_the_partitions_and_hand_them_over(stack: Stack, tmp_path: Path) -> None:
    before = ids_of(stack.events())
    # Dynamic membership (as in the chart): SIGTERM leaves the group at once.
    fields = {**stack.fields, "instance_id": "replica-1", "static_membership": False}
    second = HubProcess(fields, tmp_path / "second.log")
    # A subscription per entity type: whichever partitions a replica gets, it has events.
    listeners = {SERVICE_HUB: Listener().start(), RESOURCE_HUB: Listener().start()}
    subs = {hub: stack.hub.register(f"{x.url}/cb", hub=hub) for hub, x in listeners.items()}
    topics = {
        SERVICE_HUB: stack.settings.service_topic,
        RESOURCE_HUB: stack.settings.resource_topic,
    }
    replicas = (stack.hub, second)

    def expected() -> dict[str, list[Record]]:
        new = new_events(stack, before)
        return {hub: [r for r in new if r.topic == topic] for hub, topic in topics.items()}

    try:
        second.start().wait_ready()
        # The other replica knows the subscriptions from the hub topic.
        paths = [f"{hub}/{sub}" for hub, sub in subs.items()]
        wait_until(lambda: all(second.call("GET", p)[0] == 200 for p in paths), 30, 0.1)

        def split() -> bool:
            owned = [h.metric("tmf_events_hub_owned_partitions") for h in replicas]
            return sum(owned) == 4 and min(owned) > 0  # 2 topics x 2 partitions

        wait_until(
            split,
            90,
            0.2,
            lambda: (
                "the replicas did not split the partitions; logs:\n"
                + stack.hub.log()[-2000:]
                + second.log()[-2000:]
            ),
        )

        def delivered(replica: HubProcess) -> float:
            return replica.metric("tmf_events_hub_deliveries_total", outcome="delivered")

        earlier = [delivered(replica) for replica in replicas]  # the module's hub has a past
        stack.changes(history("two", services=12, resources=12))
        events = expected()
        for hub, listener in listeners.items():
            wait_delivered(stack, listener, events[hub])
            assert_delivered_like_kafka(listener, events[hub])
        # Each replica delivered the events of the partitions it owns.
        owned = [owned_partitions(replica.log()) for replica in replicas]
        assert owned[0] | owned[1] == {(t, p) for t in topics.values() for p in (0, 1)}
        assert not owned[0] & owned[1]
        with_events = {(r.topic, r.partition) for rs in events.values() for r in rs}
        for replica, mine, then in zip(replicas, owned, earlier, strict=True):
            if mine & with_events:
                done = delivered(replica) - then
                assert done > 0, f"a replica delivered nothing:\n{replica.log()[-2000:]}"

        assert second.terminate() == 0  # SIGTERM: positions written, exit 0
        stack.changes(history("one-left", services=4, resources=4))
        events = expected()
        for hub, listener in listeners.items():
            wait_delivered(stack, listener, events[hub], timeout=90)
            assert_delivered_like_kafka(listener, events[hub], copies_allowed=True)
        wait_until(lambda: stack.hub.metric("tmf_events_hub_owned_partitions") == 4, 30, 0.2)
    finally:
        second.close()
        for hub, listener in listeners.items():
            listener.down()
            stack.hub.call("DELETE", f"{hub}/{subs[hub]}")


def owned_partitions(log: str) -> set[tuple[str, int]]:
    """The output partitions a hub replica owns, from its last "owns" log line."""
    lines = [line for line in log.splitlines() if "hub owns " in line or "; owns " in line]
    if not lines:
        return set()
    text = re.split(r"\bowns ", lines[-1])[-1]
    return {
        (topic, int(p))
        for topic, numbers in re.findall(r"([\w.\-]+)\[([\d, ]*)\]", text)
        for p in numbers.split(",")
        if p.strip()
    }


def test_a_hub_without_output_topics_exits_2_naming_what_to_do(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    fields = hub_fields(noida_broker.bootstrap_servers, unique_name("hub-no-topics"))
    result = run_cli(["hub"], fields={**fields, "http_port": 0}, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("tmf-events hub: output topic ")
    assert "does not exist (service_topic from environment variable" in lines[0]
    assert "run `tmf-events topics` first" in lines[0]
