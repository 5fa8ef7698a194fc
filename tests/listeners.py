"""TMF listeners for the hub tests: real HTTP servers on 127.0.0.1 that record what they get.

A `Listener` answers 201 to every POST and records it (`received`); a test can make it
answer something else (`respond`), hang until released (`hang` / `release`), or go down and
come back on the same port (`down` / `start`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from processor.dev.broker import free_port
from processor.dev.running import Running


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def ce_id(self) -> str:
        return self.headers["ce-id"]

    @property
    def subject(self) -> str:
        return self.headers["ce-subject"]


# (status, headers, body) for a request
Responder = Callable[[Received], tuple[int, dict[str, str], bytes]]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the hub gave up on a hanging request: the answer has nowhere to go


def created(_request: Received) -> tuple[int, dict[str, str], bytes]:
    return 201, {}, b""


class Listener(Running):
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.respond: Responder = created
        self.hanging = threading.Event()  # set: requests wait for `released`
        self.released = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as most listeners

            def setup(self) -> None:
                super().setup()
                with listener.lock:
                    listener.connections.add(self.connection)

            def finish(self) -> None:
                with listener.lock:
                    listener.connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a killed hub): nothing was delivered.
                    self.close_connection = True
                    return
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with listener.lock:
                    listener.received.append(request)
                if listener.hanging.is_set():
                    listener.released.wait(120)
                status, headers, answer = listener.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def down(self) -> None:
        """Stop answering: connections are refused until `start()` again (same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            open_connections, self.connections = list(self.connections), set()
        for conn in open_connections:  # kept-alive connections end too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def hang(self) -> None:
        self.released.clear()
        self.hanging.set()

    def release(self) -> None:
        self.hanging.clear()
        self.released.set()

    def close(self) -> None:
        self.release()
        self.down()

    # -- what arrived ----------------------------------------------------------------------

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def ids(self) -> list[str]:
        return [r.ce_id for r in self.requests()]

    def distinct_ids(self) -> list[str]:
        """ce-ids in order of first arrival (a copy re-delivered later is not counted)."""
        return list(dict.fromkeys(self.ids()))
