"""A small TCP proxy on 127.0.0.1 that a test can cut and resume (broker outages).

    proxy = TcpProxy(("127.0.0.1", broker_port)).start()
    ...clients connect to proxy.address...
    proxy.cut()      # reset every connection, refuse new ones (the port stops listening)
    proxy.resume()   # listen again on the same port
    proxy.close()

Threads, no asyncio: one thread accepts, one thread per direction of each connection pumps
bytes. A cut resets the connections (SO_LINGER 0: the peers see a RST, as when a broker host
disappears) and closes the listening socket, so a new connection attempt is refused at once.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Self

from processor.dev.running import Running

HOST = "127.0.0.1"
_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def start(self, name: str) -> None:
        for src, dst, direction in (
            (self.client, self.upstream, "up"),
            (self.upstream, self.client, "down"),
        ):
            threading.Thread(
                target=self._pump, args=(src, dst), name=f"{name}-{direction}", daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(_CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        # One side ended: end the other too (a half-open Kafka connection is useless).
        self.close(reset=False)

    def close(self, reset: bool) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


class TcpProxy(Running):
    """Forwards 127.0.0.1:`port` to `target`; `cut()` / `resume()` make and end an outage."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.port = port
        self.accepted = 0
        self.cuts = 0
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(1 for pair in self._pairs if not pair.closed.is_set())

    def start(self) -> Self:
        """Listen (picks a free port the first time) and forward."""
        self._listen()
        return self

    def _listen(self) -> None:
        assert self._listener is None, "already listening"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(128)
        listener.settimeout(0.1)  # the accept loop notices a cut or a stop within 0.1 s
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"proxy-{self.port}", daemon=True
        )
        self._thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    client, _addr = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    _reset(client)
                    continue
                for sock in (client, upstream):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pair = _Pair(client, upstream)
                with self._lock:
                    if self._stopping.is_set():
                        pair.close(reset=True)
                        break
                    self._pairs = {p for p in self._pairs if not p.closed.is_set()}
                    self._pairs.add(pair)
                    self.accepted += 1
                    number = self.accepted
                pair.start(f"proxy-{self.port}-{number}")
        finally:
            # Closing here, in the thread that accepts, never races with accept().
            listener.close()

    def _stop_listening(self) -> None:
        thread = self._thread
        self._stopping.set()
        if thread is not None:
            thread.join(10)
            assert not thread.is_alive(), "proxy accept thread did not stop"
        self._thread = None
        self._listener = None

    def _reset_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.close(reset=True)

    def cut(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        self.cuts += 1
        self._stop_listening()
        self._reset_all()

    def resume(self) -> None:
        """Listen again on the same port."""
        self._listen()

    def close(self) -> None:
        if self._listener is not None:
            self._stop_listening()
        self._reset_all()
