"""The query API's answers while it is not ready (processor/api.py): 503 with a problem body
on every instance route, 404 only once the changelog was read to its end."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from processor.api import Api, ChangelogView
from processor.config import Settings
from processor.errors import KafkaFatalError
from processor.http import HttpServer

ROUTES = ["/instances/svc-1", "/instances/svc-1/events", "/instances/svc-1/events/latest"]


@pytest.fixture
def view() -> ChangelogView:
    return ChangelogView(Settings(instance_id="t"))  # never started: no broker needed


@pytest.mark.parametrize("path", ROUTES)
def test_not_ready_is_503_problem_on_every_instance_route(view: ChangelogView, path: str) -> None:
    status, content_type, body = Api(view)(path, {})
    assert (status, content_type) == (503, "application/problem+json")
    problem = orjson.loads(body)
    assert problem["status"] == 503
    assert "waiting for the changelog topic's metadata" in problem["detail"]

    view.partitions = [0, 1]
    view.caught_up = {0}
    assert "reading partitions [1]" in orjson.loads(Api(view)(path, {})[2])["detail"]

    view.caught_up = {0, 1}  # read to its end: now an unknown id is known not to exist
    status, content_type, body = Api(view)(path, {})
    assert (status, orjson.loads(body)["title"]) == (404, "Not Found")


def test_routes_that_are_no_instance_route_answer_as_before(view: ChangelogView) -> None:
    api = Api(view)
    assert api("/openapi.json", {})[0] == 200
    assert api("/instances/svc-1/history", {})[0] == 404
    assert api("/nothing", {})[0] == 404


def test_a_dead_follower_says_why_and_stays_unready(view: ChangelogView) -> None:
    view.partitions, view.caught_up = [0], {0}
    view.failure = KafkaFatalError("changelog follower failed: boom")
    assert view.ready() == (False, "changelog follower stopped: changelog follower failed: boom")
    assert not view.health()[0]
    assert Api(view)("/instances/svc-1", {})[0] == 503


def test_stopping_what_never_started_returns_at_once(view: ChangelogView) -> None:
    view.stop()
    server = HttpServer(0, CollectorRegistry(), view.health, view.ready, host="127.0.0.1")
    server.stop()  # never served: must not wait for a serve loop
