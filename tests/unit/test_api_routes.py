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


class Flaky(ChangelogView):
    """A follower that fails as told: `plan` says, per run, whether it reads something first
    and what it raises."""

    def __init__(self, plan: list[tuple[bool, Exception]]) -> None:
        super().__init__(Settings(instance_id="t"))
        self.plan = plan
        self.runs = 0
        self.retry_delay = lambda n: 0.0

    def _follow(self) -> None:
        read, error = self.plan[min(self.runs, len(self.plan) - 1)]
        self.runs += 1
        if read:
            self.positions[0] = self.positions.get(0, 0) + 1
        raise error


def test_a_failing_follower_is_restarted_then_given_up_with_3() -> None:
    from processor.api import FOLLOWER_RETRIES

    view = Flaky([(False, RuntimeError("boom"))]).start()
    assert view.dead.wait(10)
    assert view.runs == FOLLOWER_RETRIES + 1
    assert view.failure is not None and view.failure.code == 3
    assert "RuntimeError: boom" in view.failure.what


def test_a_follower_that_reads_between_failures_keeps_going() -> None:
    from processor.api import FOLLOWER_RETRIES

    # Progress before each failure: the count of failures in a row starts again each time.
    plan = [(True, RuntimeError("transient"))] * (FOLLOWER_RETRIES + 3)
    plan.append((False, RuntimeError("for good")))
    view = Flaky(plan).start()
    assert view.dead.wait(10)
    assert view.runs == FOLLOWER_RETRIES + 3 + FOLLOWER_RETRIES
    assert view.failure is not None and "for good" in view.failure.what


def test_a_follower_without_brokers_ends_with_4() -> None:
    from confluent_kafka import KafkaError, KafkaException

    from processor.api import FOLLOWER_RETRIES
    from processor.errors import unreachable

    # A client call that found no broker: retried like any failure, then 4.
    lost = KafkaException(KafkaError(KafkaError._TRANSPORT, "all brokers down"))
    view = Flaky([(False, lost)]).start()
    assert view.dead.wait(10)
    assert view.runs == FOLLOWER_RETRIES + 1
    assert view.failure is not None and view.failure.code == 4
    assert "cannot reach Kafka" in view.failure.what
    # Brokers gone for connect_timeout_ms already (what _lost raises): at once.
    gone = unreachable("k:9092", "bootstrap_servers from default", 30, "lost its brokers")
    view = Flaky([(False, gone)]).start()
    assert view.dead.wait(10)
    assert (view.runs, view.failure) == (1, gone)
