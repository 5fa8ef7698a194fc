"""The HTTP server's request routes (`routes=`): methods, bodies, limits and answer headers."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from processor.http import Answer, HttpServer, Request


def ok() -> tuple[bool, str]:
    return True, "fine"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Answer:
        self.requests.append(request)
        if request.method == "DELETE":
            return Answer(204)
        return Answer(201, "application/json", b'{"ok":true}', (("Location", "/x/1"),))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[HttpServer]:
    s = HttpServer(
        0, CollectorRegistry(), ok, ok, host="127.0.0.1", routes=recorder, max_body_bytes=100
    ).start()
    yield s
    s.stop()


def call(
    server: HttpServer, method: str, path: str, body: bytes | None = None, **headers: str
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers)
    return conn.getresponse()


def test_post_gets_its_body_and_the_answer_keeps_its_headers(
    server: HttpServer, recorder: Recorder
) -> None:
    response = call(server, "POST", "/things?a=1", b'{"x": 1}')
    assert response.status == 201
    assert response.getheader("Location") == "/x/1"
    assert response.read() == b'{"ok":true}'
    request = recorder.requests[0]
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/things",
        {"a": ["1"]},
        b'{"x": 1}',
    )


def test_204_has_no_body(server: HttpServer) -> None:
    response = call(server, "DELETE", "/things/1")
    assert response.status == 204
    assert response.read() == b""
    assert response.getheader("Content-Type") is None


def test_a_body_over_the_limit_is_413_and_never_reaches_the_routes(
    server: HttpServer, recorder: Recorder
) -> None:
    response = call(server, "POST", "/things", b"x" * 101)
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert recorder.requests == []
    assert call(server, "POST", "/things", b"x" * 100).status == 201


def test_chunked_bodies_are_refused(server: HttpServer, recorder: Recorder) -> None:
    # One write: the server answers without reading the body, so none may still be under way.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /things HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nab\r\n0\r\n\r\n"
        )
        answer = sock.makefile("rb").readline()
    assert answer.split()[1] == b"411"
    assert recorder.requests == []


def test_probes_and_metrics_stay_built_in(server: HttpServer, recorder: Recorder) -> None:
    assert call(server, "GET", "/readyz").status == 200
    assert call(server, "GET", "/metrics").status == 200
    assert recorder.requests == []
    assert call(server, "GET", "/other").status == 201  # everything else: the routes
    assert [r.method for r in recorder.requests] == ["GET"]


def test_without_routes_only_get_is_served() -> None:
    s = HttpServer(0, CollectorRegistry(), ok, ok, host="127.0.0.1").start()
    try:
        response = call(s, "POST", "/things", b"{}")
        assert response.status == 405 and response.getheader("Allow") == "GET"
        assert call(s, "GET", "/healthz").status == 200
    finally:
        s.stop()
