"""One policy for every Kafka client's configuration (processor/clients.py)."""

from __future__ import annotations

import pytest

from processor import clients, kafka_properties
from processor.config import ConfigError, load_settings
from tests.unit.conftest import make_settings

USER = {
    "security.protocol": "SASL_SSL",
    "session.timeout.ms": 7000,
    "linger.ms": 20,
    "fetch.wait.max.ms": 50,
}


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    return make_settings(kafka=USER, bootstrap_servers="b:9092")


def test_each_role_gets_only_what_it_reads(settings) -> None:  # type: ignore[no-untyped-def]
    consumer = clients.processor_consumer(settings)
    producer = clients.transactional_producer(settings)
    admin = clients.admin(settings)
    assert consumer["session.timeout.ms"] == 7000 and "linger.ms" not in consumer
    assert producer["linger.ms"] == 20 and "session.timeout.ms" not in producer
    assert "fetch.wait.max.ms" not in producer and consumer["fetch.wait.max.ms"] == 50
    for conf in (consumer, producer, admin):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["bootstrap.servers"] == "b:9092"
    assert set(admin) == {"security.protocol", "bootstrap.servers", "client.id", "logger"}


def test_exactly_once_properties_are_the_tools(settings) -> None:  # type: ignore[no-untyped-def]
    consumer = clients.processor_consumer(settings)
    producer = clients.transactional_producer(settings)
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["enable.auto.commit"] is False
    assert consumer["group.id"] == settings.app_id
    assert consumer["group.instance.id"] == settings.instance_id
    assert producer["transactional.id"] == f"{settings.app_id}-{settings.instance_id}"
    assert producer["partitioner"] == "murmur2_random"
    reader = clients.committed_reader(settings, "restore")
    assert reader["isolation.level"] == "read_committed" and reader["enable.partition.eof"]


def test_user_values_beat_tuning_defaults() -> None:
    settings = make_settings(kafka={"linger.ms": 50, "compression.type": "zstd"})
    producer = clients.transactional_producer(settings)
    assert producer["linger.ms"] == 50 and producer["compression.type"] == "zstd"


@pytest.mark.parametrize("name", sorted(kafka_properties.GUARDED))
def test_guarded_properties_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_settings(kafka={name: "x"})


@pytest.mark.parametrize(
    ("extra", "word"),
    [({"sesion.timeout.ms": 6000}, "sesion"), ({"max.poll.interval.ms": "soon"}, "Invalid value")],
)
def test_properties_librdkafka_refuses_are_refused(extra: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        load_settings(kafka=extra)


def test_every_role_reads_shared_properties() -> None:
    for role in ("consumer", "producer", "admin"):
        assert kafka_properties.role_reads(role, "sasl.username")  # type: ignore[arg-type]
    assert not kafka_properties.role_reads("admin", "group.instance.id")
    assert not kafka_properties.role_reads("consumer", "transaction.timeout.ms")


def test_every_name_offered_as_a_guess_is_one_librdkafka_knows() -> None:
    from confluent_kafka import KafkaException, Producer

    from processor.kafka_names import NAMES

    unknown = []
    for name in sorted(NAMES):
        try:
            Producer({name: "0", "log_level": 0})
        except KafkaException as exc:
            if "No such configuration property" in exc.args[0].str():
                unknown.append(name)
        except TypeError:  # the binding checks the value's type: the name it knows
            pass
    assert len(NAMES) > 100
    assert not unknown
