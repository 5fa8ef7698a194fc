"""Broker fixtures for the integration tests (docs/testing.md#brokers-for-tests).

Which broker answers:
- `KAFKA_BOOTSTRAP_SERVERS` set: that broker (e.g. Apache Kafka) for every broker fixture;
- else `TEST_BROKER=testcontainers` with a reachable Docker engine: Apache Kafka (KRaft) in a
  container, image `TEST_KAFKA_IMAGE` (default confluentinc/cp-kafka:7.6.0);
- else the embedded brokers: noida-db for transactional correctness, crash tests, compaction
  and restore after a broker restart; Tansu for consumer-group lifecycle.

A shared broker outlives the test run's topics, so every test names its topics, group ids and
transactional ids with `unique_name(prefix)`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from processor.dev.broker import BrokerNotInstalledError, EmbeddedBroker
from tests.kafka_helpers import Broker, embedded_broker
from tests.kafka_helpers import unique_name as _unique_name

Mode = Literal["external", "testcontainers", "testcontainers-missing", "embedded"]

_HERE = Path(__file__).parent
_DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


@functools.cache
def broker_selection() -> tuple[Mode, str]:
    """(mode, human-readable reason); decided once per run."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        return "external", f"external broker {external} (KAFKA_BOOTSTRAP_SERVERS)"
    if os.environ.get("TEST_BROKER", "").strip().lower() == "testcontainers":
        if importlib.util.find_spec("testcontainers") is None:
            return (
                "testcontainers-missing",
                "TEST_BROKER=testcontainers but testcontainers is not installed: "
                "pip install 'tmf-events[containers]'",
            )
        problem = _docker_problem()
        if problem is None:
            image = os.environ.get("TEST_KAFKA_IMAGE", _DEFAULT_KAFKA_IMAGE)
            return "testcontainers", f"Apache Kafka in a container ({image}, testcontainers)"
        return "embedded", f"embedded noida-db/Tansu (TEST_BROKER=testcontainers: {problem})"
    return "embedded", "embedded noida-db/Tansu"


def _docker_problem() -> str | None:
    try:
        docker = importlib.import_module("docker")  # comes with testcontainers
    except ImportError:
        return "the docker package is not installed"
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means: no usable engine
        return f"no Docker engine reachable ({exc.__class__.__name__}: {exc})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only the ones under this directory.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: list[pytest.Item]
) -> str | None:
    if any(_HERE in item.path.parents for item in items):
        return f"integration brokers: {broker_selection()[1]}"
    return None


@pytest.fixture(scope="session")
def _shared_broker() -> Iterator[Broker | None]:
    """The external or container broker shared by all broker fixtures; None when embedded."""
    mode, reason = broker_selection()
    if mode == "external":
        yield Broker(os.environ["KAFKA_BOOTSTRAP_SERVERS"].strip(), "external")
    elif mode == "testcontainers-missing":
        pytest.skip(reason)
    elif mode == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        image = os.environ.get("TEST_KAFKA_IMAGE", _DEFAULT_KAFKA_IMAGE)
        container = (
            KafkaContainer(image)
            .with_kraft()
            # One broker: the transaction log cannot have Kafka's default 3 replicas.
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            # Compaction tests should not wait out the default 15 s cleaner back-off.
            .with_env("KAFKA_LOG_CLEANER_BACKOFF_MS", "500")
        )
        with container as kafka:
            yield Broker(kafka.get_bootstrap_server(), "testcontainers")
    else:
        yield None


@pytest.fixture(scope="session")
def noida_broker(_shared_broker: Broker | None) -> Iterator[Broker]:
    """Session broker for transactional correctness, crash tests, compaction, restore."""
    if _shared_broker is not None:
        yield _shared_broker
    else:
        yield from embedded_broker("noida")


@pytest.fixture(scope="session")
def tansu_broker(_shared_broker: Broker | None) -> Iterator[Broker]:
    """Session broker for consumer-group lifecycle (killed members, scaling, rebalances)."""
    if _shared_broker is not None:
        yield _shared_broker
    else:
        yield from embedded_broker("tansu")


@pytest.fixture(params=["noida", "tansu"])
def each_broker(request: pytest.FixtureRequest) -> Broker:
    """Runs the test once per embedded broker (once in total on an external broker)."""
    mode, reason = broker_selection()
    if mode == "testcontainers-missing":
        pytest.skip(reason)
    if mode != "embedded" and request.param == "tansu":
        pytest.skip(f"one broker for all ({reason}): runs once, as [noida]")
    broker: Broker = request.getfixturevalue(f"{request.param}_broker")
    return broker


@pytest.fixture
def noida_private_broker() -> Iterator[EmbeddedBroker]:
    """A noida-db broker of the test's own, to restart or kill; stopped after the test."""
    mode, reason = broker_selection()
    if mode != "embedded":
        pytest.skip(f"needs an embedded broker it may restart; this run uses {reason}")
    broker = EmbeddedBroker("noida")
    try:
        broker.start()
    except BrokerNotInstalledError as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """`unique_name("orders")` -> "orders-<12 hex>": topics, groups, transactional ids."""
    return _unique_name
