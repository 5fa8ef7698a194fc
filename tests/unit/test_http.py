"""The small HTTP server (`processor.http.HttpServer`, docs/design.md#interfaces): routes and
failure handling.

Each test starts a real server on a free 127.0.0.1 port and talks to it with urllib.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from processor.http import Handler, HttpServer, Response, json_response, problem
from tests.http_client import Reply, call

PROBLEM_JSON = "application/problem+json"


def problem_body(reply: Reply, status: int, title: str) -> dict[str, Any]:
    """The body of a problem+json answer, checked for its status and title."""
    assert reply.status == status
    assert reply.content_type == PROBLEM_JSON
    body = reply.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    assert body["title"] == title
    return body


@dataclass
class Probe:
    """A health or readiness callable whose answer the test sets."""

    ok: bool = True
    detail: str = "fine"
    calls: int = 0

    def __call__(self) -> tuple[bool, str]:
        self.calls += 1
        return self.ok, self.detail


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def requests(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "unit_http_requests", "A counter for the exposition", ["kind"], registry=registry
    )
    counter.labels("a").inc(3)
    return counter


@pytest.fixture
def serve(registry: CollectorRegistry, requests: Counter) -> Iterator[Callable[..., HttpServer]]:
    """`serve(health=..., readiness=..., fallback=...)`: a started server, stopped afterwards."""
    servers: list[HttpServer] = []

    def start(
        health: Callable[[], tuple[bool, str]] | None = None,
        readiness: Callable[[], tuple[bool, str]] | None = None,
        fallback: Handler | None = None,
    ) -> HttpServer:
        server = HttpServer(
            0,
            registry,
            health or Probe(),
            readiness or Probe(),
            fallback,
            host="127.0.0.1",
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


# -- /metrics ---------------------------------------------------------------------------------


def test_metrics_are_the_prometheus_exposition_of_the_registry(
    serve: Callable[..., HttpServer],
) -> None:
    server = serve()
    assert server.port > 0
    reply = call(server.port, "/metrics")
    assert reply.status == 200
    assert reply.content_type == CONTENT_TYPE_LATEST
    assert reply.content_type.startswith("text/plain; version=")
    assert "charset=utf-8" in reply.content_type
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    family = families["unit_http_requests"]
    assert family.type == "counter"
    samples = {(s.name, s.labels.get("kind")): s.value for s in family.samples}
    assert samples[("unit_http_requests_total", "a")] == 3.0


def test_metrics_follow_the_registry_between_scrapes(
    serve: Callable[..., HttpServer], requests: Counter
) -> None:
    server = serve()
    before = call(server.port, "/metrics").body.decode()
    assert 'unit_http_requests_total{kind="b"}' not in before
    requests.labels("b").inc()
    after = call(server.port, "/metrics").body.decode()
    assert 'unit_http_requests_total{kind="b"} 1.0' in after


def test_metrics_and_probes_are_served_even_with_a_fallback(
    serve: Callable[..., HttpServer],
) -> None:
    seen: list[str] = []

    def fallback(path: str, query: dict[str, list[str]]) -> Response:
        seen.append(path)
        return problem(418, "Teapot", path)

    server = serve(fallback=fallback)
    assert call(server.port, "/metrics").status == 200
    assert call(server.port, "/healthz").status == 200
    assert call(server.port, "/readyz").status == 200
    assert seen == []


# -- /healthz and /readyz -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probe_answers_follow_the_callable(serve: Callable[..., HttpServer], path: str) -> None:
    health, readiness = Probe(detail="loop turning"), Probe(detail="assigned partitions [0]")
    probe, other = (health, readiness) if path == "/healthz" else (readiness, health)
    server = serve(health=health, readiness=readiness)

    ok = call(server.port, path)
    assert ok.status == 200
    assert ok.content_type == "application/json"
    assert ok.json() == {"status": "ok", "detail": probe.detail}

    probe.ok, probe.detail = False, "restoring partitions [0, 1]"
    fail = call(server.port, path)
    assert fail.status == 503
    assert fail.content_type == "application/json"
    assert fail.json() == {"status": "fail", "detail": "restoring partitions [0, 1]"}

    probe.ok = True
    assert call(server.port, path).status == 200
    assert probe.calls == 3
    assert other.calls == 0  # each path asks its own callable


def test_query_strings_do_not_change_the_probe_route(serve: Callable[..., HttpServer]) -> None:
    readiness = Probe(ok=False, detail="waiting")
    server = serve(readiness=readiness)
    reply = call(server.port, "/readyz?verbose=1")
    assert reply.status == 503
    assert reply.json() == {"status": "fail", "detail": "waiting"}


def test_a_failing_probe_gives_500_and_the_server_keeps_serving(
    serve: Callable[..., HttpServer],
) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("probe exploded")

    server = serve(health=broken)
    reply = call(server.port, "/healthz")
    assert reply.status == 500
    assert reply.content_type == PROBLEM_JSON
    assert reply.json()["status"] == 500
    assert call(server.port, "/readyz").status == 200


# -- unknown paths and the fallback -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/nope", "/metrics/extra", "/healthz/", "/instances/x"])
def test_unknown_path_without_fallback_is_404_problem_json(
    serve: Callable[..., HttpServer], path: str
) -> None:
    server = serve()
    body = problem_body(call(server.port, path), 404, "Not Found")
    assert body["type"] == "about:blank"
    assert path in body["detail"]


def test_fallback_gets_the_path_and_parsed_query(serve: Callable[..., HttpServer]) -> None:
    calls: list[tuple[str, dict[str, list[str]]]] = []

    def fallback(path: str, query: dict[str, list[str]]) -> Response:
        calls.append((path, query))
        return json_response(200, {"path": path}, "application/cloudevents+json")

    server = serve(fallback=fallback)
    reply = call(server.port, "/instances/a%2Fb/events?limit=2&limit=3&x=y")
    assert reply.status == 200
    assert reply.content_type == "application/cloudevents+json"
    assert reply.json() == {"path": "/instances/a%2Fb/events"}
    assert calls == [("/instances/a%2Fb/events", {"limit": ["2", "3"], "x": ["y"]})]


def test_fallback_exception_is_500_problem_json_and_server_survives(
    serve: Callable[..., HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    def fallback(path: str, query: dict[str, list[str]]) -> Response:
        if path == "/boom":
            raise ValueError("secret internals")
        return json_response(200, {"ok": True})

    server = serve(fallback=fallback)
    with caplog.at_level("ERROR", logger="processor.http"):
        reply = call(server.port, "/boom")
    problem_body(reply, 500, "Internal Server Error")
    assert "secret internals" not in reply.body.decode()  # details stay in the log
    assert any("/boom" in r.getMessage() and r.exc_info for r in caplog.records)

    for _ in range(3):  # the server and its other routes still answer
        assert call(server.port, "/fine").status == 200
        assert call(server.port, "/healthz").status == 200
        assert call(server.port, "/boom").status == 500


def test_a_slow_request_does_not_block_others(serve: Callable[..., HttpServer]) -> None:
    entered, release = threading.Event(), threading.Event()

    def fallback(path: str, query: dict[str, list[str]]) -> Response:
        if path == "/slow":
            entered.set()
            release.wait(30)
        return json_response(200, {"path": path})

    server = serve(fallback=fallback)
    slow: list[Reply] = []
    worker = threading.Thread(target=lambda: slow.append(call(server.port, "/slow", timeout=60)))
    worker.start()
    try:
        assert entered.wait(30), "the slow request never reached the handler"
        # While /slow is held inside its handler, other requests are answered.
        assert call(server.port, "/healthz").status == 200
        assert call(server.port, "/metrics").status == 200
        assert not slow
    finally:
        release.set()
        worker.join(60)
    assert [r.status for r in slow] == [200]


def test_stop_closes_the_port(registry: CollectorRegistry) -> None:
    server = HttpServer(0, registry, Probe(), Probe(), host="127.0.0.1").start()
    port = server.port
    assert call(port, "/healthz").status == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
