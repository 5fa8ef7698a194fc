"""The first contact with Kafka, bounded: every command that talks to Kafka asks for metadata
first and gives up after `connect_timeout_ms` with exit code 4, naming the brokers it tried
and the client's last error, instead of retrying silently for ever."""

from __future__ import annotations

import logging
import re
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from processor import clients
from processor.config import Settings
from processor.errors import CommandError, kafka_failure, unreachable

log = logging.getLogger(__name__)

# A broker that answers does so within milliseconds; after this long the operator hears that
# the command is waiting, and for how long at most.
_QUIET_S = 3.0

# librdkafka's connection errors name its internal broker handle first and end with timings;
# neither says anything to an operator.
_HANDLE = re.compile(r"^\S+/(bootstrap|\d+): ")
_TIMING = re.compile(r" \(after \d+ms in state \w+\)$")


def wait_for_kafka(settings: Settings, *, bootstrap: str | None = None) -> None:
    """Return once a broker answers; raise KafkaUnreachableError (4) after `connect_timeout_ms`,
    or KafkaFatalError (3) when a broker answers with an error."""
    errors: list[KafkaError] = []
    conf = clients.admin(settings)
    if bootstrap is not None:
        conf["bootstrap.servers"] = bootstrap
    # The probe's own failures are reported in one line below, not logged as they happen.
    conf["log_level"] = 0
    conf["error_cb"] = errors.append
    admin = AdminClient(conf)
    seconds = settings.connect_timeout_ms / 1000
    address = conf["bootstrap.servers"]
    origin = settings.origin("bootstrap_servers")
    started = time.monotonic()
    try:
        try:
            admin.list_topics(timeout=min(seconds, _QUIET_S))
            return
        except KafkaException:
            if seconds <= _QUIET_S:
                raise
        log.warning(
            "no answer from Kafka at %s yet; trying for up to %g s (connect_timeout_ms)",
            address,
            seconds,
        )
        admin.list_topics(timeout=max(0.1, seconds - (time.monotonic() - started)))
        return
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb: the reason behind the timeout
        elapsed = max(seconds, time.monotonic() - started)
        reason = _last_reason(errors)
        if reason:
            raise unreachable(address, origin, round(elapsed, 1), reason) from exc
        raise kafka_failure(exc, address, origin, round(elapsed, 1)) from exc


def call_failed(settings: Settings, exc: KafkaException) -> CommandError:
    """A Kafka call of a command that failed, told like the first contact's failure."""
    return kafka_failure(
        exc,
        settings.bootstrap_servers,
        settings.origin("bootstrap_servers"),
        settings.connect_timeout_ms / 1000,
    )


def _last_reason(errors: list[KafkaError]) -> str:
    # "1/1 brokers are down" says less than the connection error before it.
    for err in reversed(errors):
        if err.code() != KafkaError._ALL_BROKERS_DOWN:
            return _HANDLE.sub("", _TIMING.sub("", str(err.str())))
    return str(errors[-1].str()) if errors else ""
