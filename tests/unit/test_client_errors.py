"""How the loop finds the KafkaError behind a failed client call."""

import pytest
from confluent_kafka import KafkaError, KafkaException

from processor.loop import _kafka_error_of


def _fenced() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED))


def test_a_kafka_exception_carries_its_error() -> None:
    assert _kafka_error_of(_fenced()).code() == KafkaError._FENCED


def test_a_system_error_from_a_callback_yields_the_exception_it_wraps() -> None:
    # What CPython raises when a callback returns while the client's exception is set.
    try:
        try:
            raise _fenced()
        except KafkaException as exc:
            raise SystemError("returned a result with an exception set") from exc
    except SystemError as outer:
        assert _kafka_error_of(outer).code() == KafkaError._FENCED


def test_an_unrelated_system_error_is_not_swallowed() -> None:
    with pytest.raises(SystemError, match="unrelated"):
        _kafka_error_of(SystemError("unrelated"))
