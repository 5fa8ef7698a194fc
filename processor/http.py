"""A small threaded HTTP server for /metrics, /healthz, /readyz and the domain API.

GET requests go to the built-in routes, then to `routes` or the GET-only `fallback`. Other
methods (POST, PUT, PATCH, DELETE) need `routes`, which gets the whole request, body
included (at most `max_body_bytes`, with a Content-Length), and answers with headers of its
own (e.g. Location).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

# (status, content type, body)
Response = tuple[int, str, bytes]
Handler = Callable[[str, dict[str, list[str]]], Response]

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str = ""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(response: Response, *headers: tuple[str, str]) -> Answer:
        status, content_type, body = response
        return Answer(status, content_type, body, headers)


RequestHandler = Callable[[Request], Answer]


def json_response(status: int, body: object, content_type: str = "application/json") -> Response:
    return status, content_type, orjson.dumps(body)


def problem(status: int, title: str, detail: str) -> Response:
    """RFC 9457 problem details."""
    return json_response(
        status,
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        "application/problem+json",
    )


class HttpServer:
    """Routes: exact paths, plus one prefix handler for everything else (the domain API)."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, str]],
        readiness: Callable[[], tuple[bool, str]],
        fallback: Handler | None = None,
        host: str = "0.0.0.0",  # a pod must be reachable by its probes
        routes: RequestHandler | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.registry = registry
        self.health = health
        self.readiness = readiness
        self.fallback = fallback
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                try:
                    body = self._body()
                    if isinstance(body, Answer):
                        answer = body
                    else:
                        request = Request(
                            method, parts.path, parse_qs(parts.query), self.headers, body
                        )
                        answer = server.dispatch(request)
                except Exception:
                    log.exception("HTTP handler failed for %s %s", method, parts.path)
                    answer = Answer.of(problem(500, "Internal Server Error", "see the logs"))
                self.send_response(answer.status)
                if answer.status != 204:
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                if answer.status != 204:
                    self.wfile.write(answer.body)

            def _body(self) -> bytes | Answer:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    self.close_connection = True
                    return Answer.of(
                        problem(411, "Length Required", "send the body with a Content-Length")
                    )
                length_text = self.headers.get("Content-Length")
                if length_text is None:
                    return b""
                try:
                    length = int(length_text)
                except ValueError:
                    length = -1
                if length < 0:
                    self.close_connection = True
                    return Answer.of(problem(400, "Bad Request", "invalid Content-Length"))
                if length > server.max_body_bytes:
                    # Drained when modest, so the client reads the answer instead of a reset.
                    if length <= 16 * server.max_body_bytes:
                        self.rfile.read(length)
                    else:
                        self.close_connection = True
                    return Answer.of(
                        problem(
                            413,
                            "Content Too Large",
                            f"the body may have at most {server.max_body_bytes} bytes",
                        )
                    )
                return self.rfile.read(length)

            def log_message(self, format: str, *args: object) -> None:
                pass  # access logs would be per request: too chatty at INFO

        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="http")

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def dispatch(self, request: Request) -> Answer:
        """Built-in GET routes first, then `routes` (any method) or `fallback` (GET)."""
        if request.method == "GET" and (
            request.path in ("/metrics", "/healthz", "/readyz") or self.routes is None
        ):
            return Answer.of(self.route(request.path, request.query))
        if self.routes is not None:
            return self.routes(request)
        return Answer.of(
            problem(405, "Method Not Allowed", f"{request.method} is not served here"),
            ("Allow", "GET"),
        )

    def route(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path in ("/healthz", "/readyz"):
            ok, detail = self.health() if path == "/healthz" else self.readiness()
            return json_response(
                200 if ok else 503, {"status": "ok" if ok else "fail", "detail": detail}
            )
        if self.fallback is not None:
            return self.fallback(path, query)
        return problem(404, "Not Found", f"no resource at {path}")

    def start(self) -> HttpServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for a serve_forever that never began
            self.httpd.shutdown()
        self.httpd.server_close()
