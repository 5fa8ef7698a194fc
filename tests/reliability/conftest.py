"""Fixtures of the reliability tests (fault injection against real brokers,
docs/testing.md#brokers-for-tests).

Brokers follow the integration tests' choice (`tests/integration/conftest.py`):
`KAFKA_BOOTSTRAP_SERVERS` set → that broker for every test that does not need to control a
broker of its own; else the embedded noida-db (transactions: crash, bad input, graceful stop)
and Tansu (group lifecycle: scaling; the proxy outage). The profile (`RELIABILITY_PROFILE`,
short by default, `long` for `make reliability`) sets sizes and the per-test timeout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kafka_helpers import Broker, embedded_broker
from tests.kafka_helpers import unique_name as _unique_name
from tests.reliability.harness import LONG, PROFILE

_HERE = Path(__file__).parent


def _external() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.reliability)
            if LONG:
                item.add_marker(pytest.mark.timeout(3600))


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: list[pytest.Item]
) -> str | None:
    if any(_HERE in item.path.parents for item in items):
        where = f"external {_external()}" if _external() else "embedded noida-db/Tansu"
        return f"reliability profile: {PROFILE}; brokers: {where}"
    return None


@pytest.fixture(scope="session")
def noida_broker() -> Iterator[Broker]:
    """Transactional correctness: 0 copies expected (noida-db, or the external broker)."""
    if _external():
        yield Broker(_external(), "external")
    else:
        yield from embedded_broker("noida")


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[Broker]:
    """Group lifecycle (killed members, scaling); the external broker when there is one."""
    if _external():
        yield Broker(_external(), "external")
    else:
        yield from embedded_broker("tansu")


@pytest.fixture
def embedded_only() -> None:
    """For tests that need a broker of their own (to cut or restart)."""
    if _external():
        pytest.skip("needs an embedded broker it controls; KAFKA_BOOTSTRAP_SERVERS is set")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    return _unique_name
