"""What a command tells the operator when it cannot go on: one line on stderr and an exit
code from one table (README.md, "Exit codes").

The line reads `tmf-events <command>: <what> (<setting> from <where>): <what to do>`; the
part in parentheses names the setting behind the failure and where its value came from
(processor/origins.py). A traceback follows only with `--debug` or `log_level: DEBUG`.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException

OK = 0
FAILED = 1  # the command's own failure (no such instance, failed deliveries, ...)
USAGE = 2  # configuration or usage: a bad setting, flag or file, a busy port
KAFKA_FATAL = 3  # Kafka refused or failed for good (fenced, fatal, not allowed)
KAFKA_UNREACHABLE = 4  # no broker answered within connect_timeout_ms

# Client errors that mean "no broker answered", as opposed to "a broker said no".
UNREACHABLE_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


class CommandError(Exception):
    """A failure the operator can act on; `line` is everything they are told."""

    code = FAILED

    def __init__(
        self, what: str, hint: str = "", *, origin: str | None = None, code: int | None = None
    ) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.origin = origin
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        text = self.what
        if self.origin:
            text += f" ({self.origin})"
        if self.hint:
            text += f": {self.hint}"
        return text

    def line(self, command: str) -> str:
        return f"tmf-events {command}: {self}"


class UsageError(CommandError):
    """A bad setting, flag or file: nothing will change until the operator does."""

    code = USAGE


class KafkaUnreachableError(CommandError):
    code = KAFKA_UNREACHABLE


class KafkaFatalError(CommandError):
    code = KAFKA_FATAL


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The client error a KafkaException carries, if any."""
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


def kafka_text(exc: BaseException) -> str:
    err = kafka_error(exc)
    return str(err.str()) if err is not None else str(exc)


def unreachable(bootstrap: str, origin: str, seconds: float, reason: str) -> KafkaUnreachableError:
    return KafkaUnreachableError(
        f"cannot reach Kafka at {bootstrap} within {seconds:g} s"
        + (f": {reason}" if reason else ""),
        "check that a broker runs there and the kafka security settings; "
        "connect_timeout_ms sets how long to wait",
        origin=origin,
    )


def kafka_failure(exc: KafkaException, bootstrap: str, origin: str, seconds: float) -> CommandError:
    """A Kafka call that failed: unreachable (4) or refused (3)."""
    err = kafka_error(exc)
    if err is not None and err.code() in UNREACHABLE_CODES:
        return unreachable(bootstrap, origin, seconds, str(err.str()))
    return KafkaFatalError(
        f"Kafka at {bootstrap} failed: {kafka_text(exc)}",
        "see the broker's answer above; permissions (ACLs) and the kafka settings are the "
        "usual causes",
        origin=origin,
    )


def port_failure(exc: OSError, port: int, origin: str) -> UsageError:
    """The HTTP port cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        what = f"port {port} is already in use"
    elif exc.errno == errno.EACCES:
        what = f"port {port} needs privileges this process does not have"
    else:
        what = f"cannot listen on port {port}: {exc.strerror or exc}"
    return UsageError(what, "stop what holds it or set http_port to a free port", origin=origin)


def report(
    exc: BaseException, command: str, *, debug: bool = False, stream: TextIO | None = None
) -> int:
    """Tell the operator about `exc` (one line; the traceback before it when debugging)
    and return the exit code."""
    out = stream if stream is not None else sys.stderr
    debug = debug or logging.getLogger().isEnabledFor(logging.DEBUG)
    if debug:
        traceback.print_exception(exc, file=out)
    if isinstance(exc, CommandError):
        failure = exc
    else:  # a bug: still one line, and a way to see more
        failure = CommandError(
            f"unexpected error: {type(exc).__name__}: {exc}",
            "" if debug else "run again with --debug for the traceback, and report it",
        )
    print(failure.line(command), file=out, flush=True)
    return failure.code
