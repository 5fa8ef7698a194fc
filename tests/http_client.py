"""One HTTP request to a server the test runs on 127.0.0.1, and its answer as data: an error
status is an answer like any other (urllib raises it as HTTPError)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    port: int, path: str, method: str = "GET", data: bytes | None = None, timeout: float = 10
) -> Reply:
    """`method` `path` on 127.0.0.1:`port`; raises OSError (URLError among them) when nothing
    answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Reply(
                resp.status, resp.headers.get("Content-Type", ""), resp.read(), dict(resp.headers)
            )
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers.get("Content-Type", ""), exc.read(), dict(exc.headers))
