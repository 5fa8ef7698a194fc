"""A small threaded HTTP server for /metrics, /healthz, /readyz and the domain API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

# (status, content type, body)
Response = tuple[int, str, bytes]
Handler = Callable[[str, dict[str, list[str]]], Response]


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
    ) -> None:
        self.registry = registry
        self.health = health
        self.readiness = readiness
        self.fallback = fallback
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                try:
                    status, ctype, body = server.route(parts.path, parse_qs(parts.query))
                except Exception:
                    log.exception("HTTP handler failed for %s", parts.path)
                    status, ctype, body = problem(500, "Internal Server Error", "see the logs")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # access logs would be per request: too chatty at INFO

        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="http")

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

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
