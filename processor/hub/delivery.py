"""One POST of an event to a listener: the TMF path, CloudEvents HTTP headers, bounded I/O.

The request goes to `{callback}/listener/{eventName}` (`serviceStateChangeEvent`, ...) with
the Kafka value as its body, byte for byte, and the record's CloudEvents attributes as
headers in the HTTP binary binding: `ce_<name>` becomes `ce-<name>` (values percent-encoded
where HTTP needs it), `content-type` becomes `Content-Type`. With a signing secret, the
`X-Hub-Signature-256: sha256=<hex>` header is the HMAC-SHA256 of the body.

The connection goes to an address the callback check passed (resolved again for each
request), with the callback's host as Host header and TLS server name; redirects are not
followed; connect and each read are bounded by the request timeout, the answer's body by a
size limit. A 2xx answer is a delivery; anything else is a failure to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from processor.hub.callbacks import AllowedHosts, Callback, CallbackError, Resolver
from processor.hub.callbacks import allowed_addresses as checked_addresses
from processor.metrics import package_version
from processor.tmf import listener_name

SIGNATURE_HEADER = "X-Hub-Signature-256"
USER_AGENT = f"tmf-events-hub/{package_version()}"
# Bytes CloudEvents' HTTP binding lets through unencoded: printable ASCII but space, '"', '%'.
_PLAIN = frozenset(range(0x21, 0x7F)) - {0x22, 0x25}


def listener_path(callback: Callback, event_type: str) -> str:
    return f"{callback.base_path}/listener/{listener_name(event_type)}"


def header_value(raw: bytes) -> str:
    """A header value as the CloudEvents HTTP binding writes it (percent-encoded UTF-8)."""
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in raw)


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def http_headers(
    kafka_headers: Iterable[tuple[str, str | bytes | None]], body: bytes, secret: bytes | None
) -> list[tuple[str, str]]:
    """The HTTP headers of a delivery of a Kafka record with these headers and value."""
    out: list[tuple[str, str]] = []
    content_type = "application/json"
    for name, raw in kafka_headers:
        if raw is None:
            continue
        value = raw.encode() if isinstance(raw, str) else raw
        lowered = name.lower()
        if lowered == "content-type":
            content_type = value.decode("ascii", "replace")
        elif lowered.startswith("ce_") and len(lowered) > 3:
            out.append(("ce-" + lowered[3:], header_value(value)))
    out.append(("Content-Type", content_type))
    out.append(("User-Agent", USER_AGENT))
    if secret is not None:
        out.append((SIGNATURE_HEADER, signature(secret, body)))
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # the listener's answer; None when there was none
    error: str | None  # why it failed (None on a 2xx)
    sent: bool  # the whole request went out: the listener may have it even without an answer
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.error is None


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to `address` while speaking to `host` (Host header)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to `address`; TLS verifies the certificate for `host` (SNI too)."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


class Poster:
    """POSTs deliveries for one subscription, keeping its connection open between them."""

    def __init__(
        self,
        allowed: AllowedHosts,
        timeout_s: float,
        max_response_bytes: int,
        resolve: Resolver,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed = allowed
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.resolve = resolve
        self.tls = tls if tls is not None else ssl.create_default_context()
        self.conn: http.client.HTTPConnection | None = None
        self.conn_key: tuple[str, str, int, str] | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self.conn_key = None, None

    def _connection(
        self, callback: Callback, addresses: Sequence[str]
    ) -> http.client.HTTPConnection:
        if self.conn is not None and self.conn_key is not None:
            scheme, address, port, host = self.conn_key
            if (scheme, port, host) == (callback.scheme, callback.port, callback.host) and (
                address in addresses
            ):
                return self.conn
        self.close()
        address = addresses[0]
        if callback.scheme == "https":
            conn: http.client.HTTPConnection = _PinnedHTTPS(
                callback.host, callback.port, address, self.timeout_s, self.tls
            )
        else:
            conn = _PinnedHTTP(callback.host, callback.port, address, self.timeout_s)
        self.conn, self.conn_key = conn, (callback.scheme, address, callback.port, callback.host)
        return conn

    def post(
        self, callback: Callback, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Outcome:
        started = time.monotonic()
        try:
            addresses = checked_addresses(callback, self.allowed, self.resolve)
        except CallbackError as exc:
            self.close()
            return Outcome(None, str(exc), False, time.monotonic() - started)
        sent = False
        for attempt in (1, 2):  # a kept-alive connection the listener closed: once more
            reused = self.conn is not None
            conn = self._connection(callback, addresses)
            try:
                conn.putrequest("POST", path, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                sent = True
                response = conn.getresponse()
                data = response.read(self.max_response_bytes + 1)
                if len(data) > self.max_response_bytes or response.will_close:
                    self.close()  # the rest is not read: the connection cannot be reused
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                stale = reused and isinstance(
                    exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                )
                if attempt == 1 and stale:
                    sent = False
                    continue
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                return Outcome(None, reason, sent, time.monotonic() - started)
            seconds = time.monotonic() - started
            if 200 <= status < 300:
                return Outcome(status, None, True, seconds)
            return Outcome(status, f"listener answered {status}", True, seconds)
        raise AssertionError("unreachable")  # pragma: no cover
