"""The query service (`tmf-events api`, docs/design.md#interfaces) against what the processor really
emitted.

A processor with `history=3` runs on noida-db over a few change records of a few instances;
the API (`ChangelogView` + `Api` behind `HttpServer`, in this process on a free port, and once
as the real `tmf-events api` child process) must answer with exactly the events on the output
topics: the latest event's `id` and `data` are the last event's `ce_id` and JSON value for that
subject, every CloudEvents attribute is its `ce_` header. Responses are validated against the
schemas of the service's own OpenAPI document.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from processor.api import Api, ChangelogView
from processor.config import Settings
from processor.dev.broker import EmbeddedBroker
from processor.dev.synthetic import rfc3339_ms
from processor.http import HttpServer
from tests.http_client import Reply, call
from tests.kafka_helpers import (
    Broker,
    Record,
    consume_all,
    create_topics,
    free_port,
    wait_until,
)
from tests.kafka_helpers import unique_name as new_name
from tests.processes import (
    REPO,
    ProcessorThread,
    Send,
    end_offsets,
    exit_within,
    processor_fields,
    read_input,
    run_cli,
    send,
    spawn_cli,
    stopping,
    wait_consumed,
)
from tests.schema_check import assert_valid_event

UniqueName = Callable[[str], str]

PROBLEM_JSON = "application/problem+json"
CLOUDEVENTS_JSON = "application/cloudevents+json"
T0_MS = 1_767_261_600_000  # 2026-01-01T10:00:00Z: observedAt of the first change
ODD_ID = "svc/ä 1"  # needs percent-encoding in a path: '/', a space and a non-ASCII letter


# -- building change records -------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000) - 60_000  # record timestamps inside the topics' retention


def service(sid: str, **attrs: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "href": f"/tmf-api/serviceInventory/v4/service/{urllib.parse.quote(sid, safe='')}",
        "name": "Internet access",
        "category": "CFS",
        "state": "designed",
        **attrs,
    }


def resource(rid: str, **attrs: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "href": f"/tmf-api/resourceInventoryManagement/v4/resource/{rid}",
        "@type": "PhysicalResource",
        "name": "Router",
        "resourceStatus": "standby",
        **attrs,
    }


def upsert(instance: dict[str, Any], at_s: int, entity: str = "service") -> Send:
    value = {
        "entityType": entity,
        "observedAt": rfc3339_ms(T0_MS + at_s * 1000),
        "correlationId": f"order-{at_s}",
        "instance": instance,
    }
    return Send(instance["id"].encode(), orjson.dumps(value), _now_ms())


def delete(key: str, at_s: int, entity: str = "service") -> Send:
    value = {
        "entityType": entity,
        "operation": "delete",
        "id": key,
        "observedAt": rfc3339_ms(T0_MS + at_s * 1000),
    }
    return Send(key.encode(), orjson.dumps(value), _now_ms())


def first_history() -> list[Send]:
    return [
        upsert(service("svc-1"), 1),  # Create
        upsert(service("svc-2"), 2),  # Create
        upsert(resource("res-1"), 3, "resource"),  # Create
        upsert(service("svc-1", name="Fibre access"), 4),  # AttributeValueChange
        upsert(service("svc-1", name="Fibre access"), 5),  # nothing: same instance
        upsert(service("svc-1", name="Fibre access", state="active"), 6),  # StateChange
        delete("svc-2", 7),  # Delete
        upsert(resource("res-1", resourceStatus="available"), 8, "resource"),  # StateChange
        # AttributeValueChange + StateChange from one record: the same version, two events
        upsert(service("svc-1", name="Fibre 1G", state="inactive"), 9),
        upsert(service(ODD_ID), 10),  # Create
        Send(b"svc-bad", b"not json", _now_ms()),  # a dead letter, for good measure
    ]


# -- the outcome on the topics -------------------------------------------------------------------


@dataclass(frozen=True)
class Emitted:
    """One event on an output topic, decoded."""

    record: Record
    value: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {k: (v or b"").decode() for k, v in self.record.headers}

    @property
    def id(self) -> str:
        return self.headers["ce_id"]


def events_by_subject(settings: Settings) -> dict[str, list[Emitted]]:
    """Every committed event per `ce_subject`, in the order the subject's partition holds."""
    records = consume_all(
        settings.bootstrap_servers,
        [settings.service_topic, settings.resource_topic],
        timeout=60,
    )
    out: dict[str, list[Emitted]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        subject = (record.header("ce_subject") or b"").decode()
        out[subject].append(Emitted(record, assert_valid_event((record.headers, record.value))))
    for subject, events in out.items():
        places = {(e.record.topic, e.record.partition) for e in events}
        assert len(places) == 1, f"events of {subject} on several partitions: {places}"
    return dict(out)


# -- HTTP ----------------------------------------------------------------------------------------


def instance_path(key: str, rest: str = "") -> str:
    return f"/instances/{urllib.parse.quote(key, safe='')}{rest}"


class ApiServer:
    """`ChangelogView` + `Api` behind `HttpServer` on a free 127.0.0.1 port, like `cmd_api`."""

    def __init__(self, settings: Settings) -> None:
        self.view = ChangelogView(settings).start()
        self.http = HttpServer(
            0,
            self.view.metrics.registry,
            self.view.health,
            self.view.ready,
            Api(self.view),
            host="127.0.0.1",
        ).start()
        self.port = self.http.port

    def get(self, path: str) -> Reply:
        return call(self.port, path)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(
            lambda: self.get("/readyz").status == 200,
            timeout,
            interval=0.1,
            message=lambda: f"API not ready: {self.get('/readyz').body!r}",
        )

    def stop(self) -> None:
        self.http.stop()
        self.view.stop()


# -- OpenAPI validation ------------------------------------------------------------------------

_OPENAPI_URI = "urn:tmf-events:openapi"


@cache
def openapi() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((REPO / "processor" / "openapi.json").read_bytes())
    return doc


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(openapi(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_OPENAPI_URI, resource)
    return registry


def _pointer(*parts: str) -> str:
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(urllib.parse.quote(p, safe="~") for p in escaped)


def response_validator(template: str, status: int, content_type: str) -> Draft202012Validator:
    """The validator of one documented response body (it must be documented)."""
    doc = openapi()
    responses = doc["paths"][template]["get"]["responses"]
    assert str(status) in responses, f"GET {template}: no {status} response in the OpenAPI document"
    base: tuple[str, ...] = ("paths", template, "get", "responses", str(status))
    response = responses[str(status)]
    if "$ref" in response:  # e.g. #/components/responses/NotFound
        base = tuple(response["$ref"].removeprefix("#/").split("/"))
        response = doc
        for part in base:
            response = response[part]
    content = response.get("content", {})
    assert content_type in content, (
        f"GET {template} {status}: {content_type} not documented (only {sorted(content)})"
    )
    ref = _OPENAPI_URI + "#" + _pointer(*base, "content", content_type, "schema")
    return Draft202012Validator({"$ref": ref}, registry=_registry())


def check_documented(template: str, reply: Reply) -> Any:
    """Assert that `reply` is a documented response of GET `template`; return its JSON."""
    media_type = reply.content_type.split(";")[0].strip()
    body = reply.json()
    validator = response_validator(template, reply.status, media_type)
    errors = [
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]
    assert not errors, f"GET {template} {reply.status} violates the OpenAPI schema: {errors}"
    return body


def check_problem(reply: Reply, status: int, template: str) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type == PROBLEM_JSON
    body: dict[str, Any] = check_documented(template, reply)
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


# -- checking the API against the topics -----------------------------------------------------


def assert_is_structured(cloudevent: dict[str, Any], emitted: Emitted) -> None:
    """`cloudevent` is the structured-mode form of `emitted`: every `ce_` header as an
    attribute, content-type as datacontenttype, the value as `data`."""
    expected: dict[str, Any] = {}
    for name, value in emitted.headers.items():
        if name.startswith("ce_"):
            expected[name[3:]] = value
        elif name == "content-type":
            expected["datacontenttype"] = value
    expected["data"] = emitted.value
    assert cloudevent == expected


def assert_api_matches_topics(
    api: ApiServer, by_subject: dict[str, list[Emitted]], history: int
) -> None:
    for subject, events in by_subject.items():
        last = events[-1]
        reply = api.get(instance_path(subject, "/events/latest"))
        assert reply.status == 200, (subject, reply.body)
        assert reply.content_type == CLOUDEVENTS_JSON
        latest = check_documented("/instances/{id}/events/latest", reply)
        assert latest["id"] == last.id, f"{subject}: latest is not the last event on the topic"
        assert latest["data"] == last.value
        assert_is_structured(latest, last)

        info = check_documented("/instances/{id}", api.get(instance_path(subject)))
        assert info == {
            "id": subject,
            "entityType": "service" if last.record.topic.endswith("service.events") else "resource",
            "version": int(last.headers["ce_entityversion"]),
            "deleted": last.value["eventType"].endswith("DeleteEvent"),
            "lastEvent": {
                "id": last.id,
                "type": last.value["eventType"],
                "time": last.headers["ce_time"],
            },
        }

        for limit in (1, 2, history, history + 2):
            reply = api.get(instance_path(subject, f"/events?limit={limit}"))
            assert reply.status == 200, (subject, limit, reply.body)
            body = check_documented("/instances/{id}/events", reply)
            newest_first = list(reversed(events))[: min(limit, history)]
            assert body["id"] == subject
            assert [e["id"] for e in body["events"]] == [e.id for e in newest_first]
            for got, emitted in zip(body["events"], newest_first, strict=True):
                assert_is_structured(got, emitted)
        default = api.get(instance_path(subject, "/events")).json()
        assert [e["id"] for e in default["events"]] == [last.id]


# -- the module's processor run and API ------------------------------------------------------------


@dataclass
class World:
    settings: Settings
    api: ApiServer
    by_subject: dict[str, list[Emitted]]


HISTORY = 3


@pytest.fixture(scope="module")
def world(noida_broker: Broker) -> Iterator[World]:
    name = new_name("api")
    settings = Settings(**processor_fields(noida_broker.bootstrap_servers, name, history=HISTORY))
    create_topics(settings.bootstrap_servers, {settings.input_topic: 2})
    send(settings.bootstrap_servers, settings.input_topic, first_history())
    inputs = read_input(settings.bootstrap_servers, settings.input_topic)
    with ProcessorThread(settings):
        wait_consumed(
            settings.bootstrap_servers, settings.app_id, settings.input_topic, end_offsets(inputs)
        )
    api = ApiServer(settings)
    try:
        api.wait_ready()
        yield World(settings, api, events_by_subject(settings))
    finally:
        api.stop()


def test_the_run_has_what_the_api_tests_need(world: World) -> None:
    by_subject = world.by_subject
    assert set(by_subject) == {"svc-1", "svc-2", "res-1", ODD_ID}
    assert [e.value["eventType"] for e in by_subject["svc-1"]] == [
        "ServiceCreateEvent",
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
        "ServiceAttributeValueChangeEvent",
        "ServiceStateChangeEvent",
    ]
    # The last record of svc-1 gave two events of one version: the latest is the second.
    last_two = by_subject["svc-1"][-2:]
    assert {e.headers["ce_entityversion"] for e in last_two} == {"4"}
    assert by_subject["svc-2"][-1].value["eventType"] == "ServiceDeleteEvent"


def test_latest_instance_and_history_equal_the_topics(world: World) -> None:
    assert_api_matches_topics(world.api, world.by_subject, HISTORY)


def test_latest_of_two_events_from_one_record_is_the_second(world: World) -> None:
    svc1 = world.by_subject["svc-1"]
    latest = world.api.get(instance_path("svc-1", "/events/latest")).json()
    assert latest["type"].endswith(".ServiceStateChangeEvent")
    assert latest["id"] == svc1[-1].id
    assert latest["previousid"] == svc1[-2].id


def test_deleted_instance_keeps_its_last_event(world: World) -> None:
    info = world.api.get(instance_path("svc-2")).json()
    assert info["deleted"] is True
    assert info["version"] == 2
    latest = world.api.get(instance_path("svc-2", "/events/latest")).json()
    assert latest["data"]["eventType"] == "ServiceDeleteEvent"
    assert latest["data"]["event"]["service"] == {
        "id": "svc-2",
        "href": service("svc-2")["href"],
        "@type": "Service",
    }


@pytest.mark.parametrize("limit", ["0", "-1", "x", "1.5", "2x", str(101)])
def test_bad_limit_is_400_problem_json(world: World, limit: str) -> None:
    reply = world.api.get(instance_path("svc-1", f"/events?limit={urllib.parse.quote(limit)}"))
    check_problem(reply, 400, "/instances/{id}/events")


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/instances/no-such-id", "/instances/{id}"),
        ("/instances/no-such-id/events/latest", "/instances/{id}/events/latest"),
        ("/instances/no-such-id/events?limit=2", "/instances/{id}/events"),
        ("/instances/svc-bad", "/instances/{id}"),  # a dead-lettered key has no state
        ("/instances/svc-1%2F", "/instances/{id}"),  # 'svc-1/' is another id
    ],
)
def test_unknown_instance_is_404_problem_json(world: World, path: str, template: str) -> None:
    check_problem(world.api.get(path), 404, template)


@pytest.mark.parametrize("path", ["/", "/instances", "/instances/svc-1/nope", "/events"])
def test_unknown_route_is_404_problem_json(world: World, path: str) -> None:
    reply = world.api.get(path)
    assert reply.status == 404
    assert reply.content_type == PROBLEM_JSON
    assert reply.json()["status"] == 404


def test_readyz_healthz_and_metrics_of_the_api(world: World) -> None:
    ready = world.api.get("/readyz")
    assert ready.status == 200
    assert ready.json()["status"] == "ok"
    assert world.api.get("/healthz").status == 200
    metrics = world.api.get("/metrics")
    assert metrics.status == 200
    assert metrics.content_type.startswith("text/plain")


def test_api_metrics_agree_with_its_readiness(world: World) -> None:
    """The API is scraped too (deploy/prometheus.yml job tmf-events-api, the chart's
    ServiceMonitor), and the TmfEventsNotReady alert fires on `tmf_events_ready == 0` for any
    job: once /readyz says 200, an exported tmf_events_ready must say 1."""
    assert world.api.get("/readyz").status == 200

    def ready_gauge() -> float | None:
        text = world.api.get("/metrics").body.decode()
        for family in text_string_to_metric_families(text):
            if family.name == "tmf_events_ready":
                return float(family.samples[0].value) if family.samples else None
        return None

    value = ready_gauge()
    if value is None:
        return  # not exported at all: nothing to disagree with
    wait_until(
        lambda: ready_gauge() == 1,
        5,
        message=lambda: f"the ready API exports tmf_events_ready {ready_gauge()}",
    )


def test_openapi_document_is_served_and_valid(world: World) -> None:
    reply = world.api.get("/openapi.json")
    assert reply.status == 200
    assert reply.content_type == "application/json"
    doc = reply.json()
    assert doc == openapi()
    assert doc["openapi"].startswith("3.1")
    for template in ("/instances/{id}", "/instances/{id}/events/latest", "/instances/{id}/events"):
        assert "get" in doc["paths"][template], template
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # raises SchemaError naming the problem
    # Every $ref in the document resolves.
    refs = re.findall(r'"\$ref":\s*"#([^"]+)"', reply.body.decode())
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


# -- the command line -----------------------------------------------------------------------------


def test_latest_cli_prints_the_event_and_exits_0(world: World) -> None:
    url = f"http://127.0.0.1:{world.api.port}"
    for subject, events in world.by_subject.items():
        done = run_cli(["latest", subject, "--url", url], timeout=60)
        assert done.returncode == 0, done.stderr
        printed = json.loads(done.stdout)
        assert printed["id"] == events[-1].id
        assert printed["data"] == events[-1].value
    listed = run_cli(["latest", "svc-1", "--url", url, "-n", "2"], timeout=60)
    assert listed.returncode == 0, listed.stderr
    ids = [e["id"] for e in json.loads(listed.stdout)["events"]]
    assert ids == [e.id for e in reversed(world.by_subject["svc-1"][-2:])]


def test_latest_cli_exits_1_for_an_unknown_id(world: World) -> None:
    url = f"http://127.0.0.1:{world.api.port}/"
    done = run_cli(["latest", "no-such-id", "--url", url], timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "404" in done.stderr


def test_latest_cli_exits_2_when_nothing_answers(world: World) -> None:
    done = run_cli(["latest", "svc-1", "--url", f"http://127.0.0.1:{free_port()}"], timeout=60)
    assert done.returncode == 2
    assert "cannot reach" in done.stderr


def test_api_command_serves_the_same_answers(world: World, tmp_path: Path) -> None:
    """`tmf-events api` as a child process (http_port 0: it says which port it took)."""
    fields = processor_fields(
        world.settings.bootstrap_servers, world.settings.app_id, history=HISTORY
    )
    fields["instance_id"] = "api-cli"
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = spawn_cli(["api"], fields=fields, stdout=log)
    try:
        found = wait_until(
            lambda: (
                proc.poll() is not None
                or re.search(r"listening on port (\d+)", log_path.read_text(errors="replace"))
            ),
            60,
            interval=0.1,
            message=lambda: f"tmf-events api never said its port; log:\n{log_path.read_text()}",
        )
        assert proc.poll() is None, (
            f"tmf-events api exited {proc.returncode}:\n{log_path.read_text()}"
        )
        assert isinstance(found, re.Match)
        port = int(found.group(1))
        wait_until(
            lambda: call(port, "/readyz").status == 200,
            30,
            interval=0.1,
            message=lambda: f"tmf-events api not ready: {call(port, '/readyz').body!r}",
        )
        for subject, events in world.by_subject.items():
            latest = call(port, instance_path(subject, "/events/latest"))
            assert latest.status == 200
            assert latest.json() == world.api.get(instance_path(subject, "/events/latest")).json()
            assert latest.json()["id"] == events[-1].id
        check_problem(call(port, "/instances/nope"), 404, "/instances/{id}")
        proc.terminate()
        assert proc.wait(30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


# -- following the changelog: new records, a processor restart -------------------------------------


def test_api_catches_up_and_survives_a_processor_restart(
    noida_broker: Broker, unique_name: UniqueName
) -> None:
    name = unique_name("api-live")
    settings = Settings(**processor_fields(noida_broker.bootstrap_servers, name, history=HISTORY))
    bootstrap, topic = settings.bootstrap_servers, settings.input_topic

    # The API starts before any topic exists: not ready until the changelog is there and read.
    api = ApiServer(settings)
    try:
        not_ready = api.get("/readyz")
        assert not_ready.status == 503
        assert not_ready.json()["status"] == "fail"
        # Not 404: the instance may well exist in a changelog not read yet.
        for path in ("/instances/live-1", "/instances/live-1/events/latest"):
            body = check_problem(api.get(path), 503, path.replace("live-1", "{id}"))
            assert "not ready" in body["detail"]

        create_topics(bootstrap, {topic: 2})
        send(
            bootstrap,
            topic,
            [upsert(service("live-1"), 1), upsert(resource("live-r"), 2, "resource")],
        )
        with ProcessorThread(settings) as first:
            first.wait_ready()
            inputs = read_input(bootstrap, topic)
            wait_consumed(bootstrap, settings.app_id, topic, end_offsets(inputs))
            api.wait_ready()
            by_subject = events_by_subject(settings)
            # Ready means every partition was read to its end once; records committed on
            # another partition after that arrive a moment later.
            wait_until(
                lambda: all(
                    api.get(instance_path(s, "/events/latest")).status == 200 for s in by_subject
                ),
                30,
                message=f"the API never saw all of {sorted(by_subject)}",
            )
            assert_api_matches_topics(api, by_subject, HISTORY)

            # New records while both run: the API catches up.
            send(bootstrap, topic, [upsert(service("live-1", state="active"), 3)])
            send(bootstrap, topic, [upsert(service("live-2"), 4)])
            inputs = read_input(bootstrap, topic)
            wait_consumed(bootstrap, settings.app_id, topic, end_offsets(inputs))
            by_subject = events_by_subject(settings)
            assert len(by_subject["live-1"]) == 2
            wait_until(
                lambda: (
                    api.get(instance_path("live-1", "/events/latest")).json().get("id")
                    == by_subject["live-1"][-1].id
                    and api.get(instance_path("live-2")).status == 200
                ),
                30,
                message="the API did not catch up with the new records",
            )
            assert_api_matches_topics(api, by_subject, HISTORY)
        assert first.result == 0

        # A new processor with the same app id restores the state from the changelog.
        before = events_by_subject(settings)
        with ProcessorThread(settings) as second:
            second.wait_ready()
            assert_api_matches_topics(api, before, HISTORY)
            assert api.get(instance_path("live-1")).json()["version"] == 2

            send(bootstrap, topic, [upsert(service("live-1", state="active", name="Renamed"), 5)])
            send(bootstrap, topic, [delete("live-2", 6)])
            inputs = read_input(bootstrap, topic)
            wait_consumed(bootstrap, settings.app_id, topic, end_offsets(inputs))
            after = events_by_subject(settings)
            newest = after["live-1"][-1]
            # The restored state continued the chain: no second Create, next version, linked.
            assert [e.value["eventType"] for e in after["live-1"]] == [
                "ServiceCreateEvent",
                "ServiceStateChangeEvent",
                "ServiceAttributeValueChangeEvent",
            ]
            assert newest.headers["ce_entityversion"] == "3"
            assert newest.headers["ce_previousid"] == before["live-1"][-1].id
            wait_until(
                lambda: (
                    api.get(instance_path("live-1", "/events/latest")).json().get("id") == newest.id
                    and api.get(instance_path("live-2")).json().get("deleted") is True
                ),
                30,
                message="the API did not reflect the change made after the restart",
            )
            assert_api_matches_topics(api, after, HISTORY)
        assert second.result == 0
    finally:
        api.stop()


# -- a follower that cannot recover ends the process -------------------------------------------


def test_api_exits_4_when_its_brokers_are_gone_for_good(
    noida_private_broker: EmbeddedBroker, unique_name: UniqueName, tmp_path: Path
) -> None:
    """An API whose changelog can no longer be read must not serve an ever older view: it
    exits (4: Kafka unreachable) so that its orchestrator restarts it."""
    connect_ms = 3000
    fields = processor_fields(
        noida_private_broker.bootstrap_servers,
        unique_name("api-dies"),
        http_port=free_port(),
        connect_timeout_ms=connect_ms,
    )
    settings = Settings(**fields)
    create_topics(settings.bootstrap_servers, {settings.changelog_topic: 1})
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = spawn_cli(["api"], fields=fields, stdout=log)

    def up() -> bool:
        if proc.poll() is not None:
            return True
        listening = "listening" in log_path.read_text(errors="replace")
        return listening and call(fields["http_port"], "/readyz").status == 200

    with stopping(proc):
        wait_until(
            up,
            60,
            interval=0.1,
            message=lambda: f"tmf-events api never got ready; log:\n{log_path.read_text()}",
        )
        assert proc.poll() is None, log_path.read_text()
        assert call(fields["http_port"], "/instances/nope").status == 404  # ready: true

        noida_private_broker.kill()
        code = exit_within(proc, connect_ms / 1000 + 30)
    log = log_path.read_text(errors="replace")
    assert code == 4, log
    last = log.strip().splitlines()[-1]
    assert last.startswith(
        f"tmf-events api: cannot reach Kafka at {settings.bootstrap_servers} within 3 s"
    ), log
    assert "bootstrap_servers from environment variable TMF_EVENTS_BOOTSTRAP_SERVERS" in last
    assert "Traceback" not in log
