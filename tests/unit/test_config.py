"""Settings (docs/design.md#interfaces): env (JSON lists/objects, nested `__`), YAML, precedence,
errors."""

from __future__ import annotations

import pytest

from processor.config import (
    DEFAULT_STATE_FIELDS,
    ConfigError,
    Settings,
    load_settings,
    setting_env_names,
)


@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "tmf-events.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def test_defaults():
    s = load_settings(instance_id="pod-0")
    assert s.bootstrap_servers == "localhost:9092"
    assert s.app_id == "tmf-events"
    assert s.input_topic == "inventory.changes"
    assert (s.service_topic, s.resource_topic) == ("tmf.service.events", "tmf.resource.events")
    assert s.changelog_topic == "tmf-events-state-changelog"
    assert s.dlq_topic == "tmf-events-dlq"
    assert s.source == "urn:tmf-events:tmf-events"
    assert s.type_prefix == "org.tmforum"
    assert (s.tmf_version, s.payload, s.input_format) == ("v4", "full", "json")
    assert s.private_fields == []
    assert s.state_fields == DEFAULT_STATE_FIELDS["v4"]
    assert s.entity_types == ["service", "resource"]
    assert (s.commit_interval_ms, s.max_batch, s.port_for("run")) == (100, 2000, 8080)
    assert (s.port_for("api"), s.port_for("hub")) == (8081, 8082)
    assert (s.max_record_bytes, s.max_json_depth) == (1024 * 1024, 64)
    assert s.reporting_system.model_dump() == {"id": "tmf-events", "name": "tmf-events"}
    assert s.envelope.model_dump() == {
        "domain": None,
        "title": None,
        "description": None,
        "priority": None,
    }
    assert s.static_membership is True
    assert s.history == 1
    assert s.kafka == {}
    assert s.instance_id == "pod-0"


def test_instance_id_defaults_to_the_host_name():
    import socket

    assert load_settings().instance_id == socket.gethostname()


def test_derived_defaults_follow_app_id():
    s = load_settings(app_id="inv")
    assert s.changelog_topic == "inv-state-changelog"
    assert s.dlq_topic == "inv-dlq"
    assert s.source == "urn:tmf-events:inv"
    assert s.reporting_system.id == "inv"


def test_derived_defaults_do_not_override_explicit_values():
    s = load_settings(
        app_id="inv",
        changelog_topic="cl",
        dlq_topic="dl",
        source="urn:x",
        reporting_system={"id": "r"},
    )
    assert (s.changelog_topic, s.dlq_topic, s.source, s.reporting_system.id) == (
        "cl",
        "dl",
        "urn:x",
        "r",
    )


def test_v5_state_field_defaults():
    s = load_settings(tmf_version="v5")
    assert s.state_fields == DEFAULT_STATE_FIELDS["v5"]
    assert s.state_fields["service"] == ["state", "operatingStatus"]


def test_env_values(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_APP_ID", "from-env")
    monkeypatch.setenv("TMF_EVENTS_MAX_BATCH", "500")
    monkeypatch.setenv("TMF_EVENTS_STATIC_MEMBERSHIP", "false")
    monkeypatch.setenv("TMF_EVENTS_TMF_VERSION", "v5")
    s = load_settings()
    assert (s.app_id, s.max_batch, s.static_membership, s.tmf_version) == (
        "from-env",
        500,
        False,
        "v5",
    )
    assert s.dlq_topic == "from-env-dlq"


def test_env_json_lists_and_objects(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_PRIVATE_FIELDS", '["note", "billing.account"]')
    monkeypatch.setenv("TMF_EVENTS_STATE_FIELDS", '{"service": ["state", "category"]}')
    monkeypatch.setenv("TMF_EVENTS_ENTITY_TYPES", '["resource"]')
    monkeypatch.setenv(
        "TMF_EVENTS_KAFKA", '{"security.protocol": "SASL_SSL", "max.poll.interval.ms": 10000}'
    )
    monkeypatch.setenv("TMF_EVENTS_ENVELOPE", '{"domain": "inventory", "priority": "3"}')
    s = load_settings()
    assert s.private_fields == ["note", "billing.account"]
    assert s.state_fields == {
        "service": ["state", "category"],
        "resource": DEFAULT_STATE_FIELDS["v4"]["resource"],
    }
    assert s.entity_types == ["resource"]
    assert s.kafka == {"security.protocol": "SASL_SSL", "max.poll.interval.ms": 10000}
    assert (s.envelope.domain, s.envelope.priority, s.envelope.title) == ("inventory", "3", None)


def test_env_nested_with_double_underscore(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_REPORTING_SYSTEM__NAME", "OSS")
    monkeypatch.setenv("TMF_EVENTS_ENVELOPE__TITLE", "Inventory")
    s = load_settings(app_id="inv")
    assert s.reporting_system.model_dump() == {"id": "inv", "name": "OSS"}
    assert s.envelope.title == "Inventory"


def test_yaml_file(yaml_file):
    path = yaml_file(
        "app_id: from-file\n"
        "tmf_version: v5\n"
        "payload: delta\n"
        "private_fields: [note, serviceCharacteristic.secret]\n"
        "state_fields:\n  resource: [operationalState]\n"
        "reporting_system:\n  name: OSS\n"
        "envelope:\n  domain: inventory\n"
        "kafka:\n  security.protocol: SSL\n  linger.ms: 5\n"
    )
    s = load_settings(path)
    assert s.app_id == "from-file"
    assert (s.tmf_version, s.payload) == ("v5", "delta")
    assert s.private_fields == ["note", "serviceCharacteristic.secret"]
    assert s.state_fields == {
        "service": ["state", "operatingStatus"],
        "resource": ["operationalState"],
    }
    assert s.reporting_system.model_dump() == {"id": "from-file", "name": "OSS"}
    assert s.envelope.domain == "inventory"
    assert s.kafka == {"security.protocol": "SSL", "linger.ms": 5}


def test_empty_yaml_file_gives_defaults(yaml_file):
    assert load_settings(yaml_file("")).app_id == "tmf-events"
    assert load_settings(yaml_file("# only a comment\n")).app_id == "tmf-events"


def test_precedence_cli_over_env_over_file_over_default(yaml_file, monkeypatch):
    path = yaml_file("app_id: file\ninput_topic: file-in\nservice_topic: file-svc\n")
    monkeypatch.setenv("TMF_EVENTS_APP_ID", "env")
    monkeypatch.setenv("TMF_EVENTS_INPUT_TOPIC", "env-in")
    s = load_settings(path, app_id="cli")
    assert s.app_id == "cli"  # command line beats env and file
    assert s.input_topic == "env-in"  # env beats file
    assert s.service_topic == "file-svc"  # file beats default
    assert s.resource_topic == "tmf.resource.events"  # default
    assert s.dlq_topic == "cli-dlq"  # derived from the winner


def test_none_overrides_are_ignored(yaml_file):
    s = load_settings(yaml_file("bootstrap_servers: broker:9092\n"), bootstrap_servers=None)
    assert s.bootstrap_servers == "broker:9092"


def test_nested_env_merges_with_nested_file_values(yaml_file, monkeypatch):
    path = yaml_file("reporting_system:\n  id: file-id\n  name: file-name\n")
    monkeypatch.setenv("TMF_EVENTS_REPORTING_SYSTEM__NAME", "env-name")
    s = load_settings(path)
    assert s.reporting_system.model_dump() == {"id": "file-id", "name": "env-name"}


def test_the_file_does_not_leak_into_later_settings(yaml_file):
    load_settings(yaml_file("app_id: from-file\n"))
    assert load_settings().app_id == "tmf-events"
    assert Settings(instance_id="x").app_id == "tmf-events"


def test_every_design_setting_has_an_env_name():
    names = setting_env_names()
    for setting in [
        "bootstrap_servers",
        "app_id",
        "input_topic",
        "service_topic",
        "resource_topic",
        "changelog_topic",
        "dlq_topic",
        "tmf_version",
        "payload",
        "private_fields",
        "state_fields",
        "source",
        "type_prefix",
        "commit_interval_ms",
        "max_batch",
        "http_port",
        "instance_id",
        "reporting_system",
        "envelope",
        "history",
        "entity_types",
        "max_record_bytes",
        "max_json_depth",
        "static_membership",
        "kafka",
    ]:
        assert f"TMF_EVENTS_{setting.upper()}" in names


# --------------------------------------------------------------------------------------
# invalid values


@pytest.mark.parametrize(
    ("overrides", "mentions"),
    [
        ({"tmf_version": "v6"}, "tmf_version"),
        ({"payload": "partial"}, "payload"),
        ({"input_format": "xml"}, "input_format"),
        ({"entity_types": ["product"]}, "entity_types"),
        ({"state_fields": {"product": ["x"]}}, "state_fields"),
        ({"private_fields": ["note..x"]}, "empty segment"),
        ({"private_fields": [""]}, "empty segment"),
        ({"max_batch": 0}, "max_batch"),
        ({"commit_interval_ms": 0}, "commit_interval_ms"),
        ({"http_port": 70000}, "http_port"),
        ({"history": 0}, "history"),
        ({"history": 101}, "history"),
        ({"max_json_depth": 0}, "max_json_depth"),
        ({"max_record_bytes": 0}, "max_record_bytes"),
        ({"unknown_setting": 1}, "unknown_setting"),
        ({"reporting_system": {"colour": "red"}}, "colour"),
        ({"envelope": {"severity": "high"}}, "severity"),
        ({"kafka": {"a": [1]}}, "kafka"),
    ],
)
def test_invalid_values_raise_config_error(overrides, mentions):
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert mentions in message
    # One line in the operator's words: the setting, where its value came from, what to do.
    assert "\n" not in message and "pydantic" not in message, message
    assert " from flag --" in message, message


def test_invalid_env_value_raises_config_error(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_MAX_BATCH", "lots")
    with pytest.raises(ConfigError, match="max_batch"):
        load_settings()


def test_invalid_env_json_raises_config_error(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_PRIVATE_FIELDS", "note, other")
    with pytest.raises(ConfigError, match="private_fields"):
        load_settings()


def test_invalid_file_value_raises_config_error(yaml_file):
    with pytest.raises(ConfigError, match="payload"):
        load_settings(yaml_file("payload: sometimes\n"))


def test_unknown_file_setting_raises_config_error(yaml_file):
    with pytest.raises(ConfigError, match="bootstrap_server"):
        load_settings(yaml_file("bootstrap_server: typo:9092\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.yaml"):
        load_settings(tmp_path / "missing.yaml")


def test_config_file_that_is_not_yaml(yaml_file):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(yaml_file("app_id: [unclosed\n"))


def test_config_file_that_is_not_a_mapping(yaml_file):
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(yaml_file("- app_id\n- other\n"))


# -- where a value came from, and what a problem says -------------------------------------------


def test_each_value_knows_where_it_came_from(yaml_file, monkeypatch):
    path = yaml_file("app_id: inv\nkafka:\n  linger.ms: 5\n  client.rack: r1\n")
    monkeypatch.setenv("TMF_EVENTS_MAX_BATCH", "500")
    monkeypatch.setenv("TMF_EVENTS_KAFKA__client.rack", "r2")
    s = load_settings(path, bootstrap_servers="k:9092")
    assert s.origin("bootstrap_servers") == "bootstrap_servers from flag --bootstrap-servers"
    assert s.origin("max_batch") == "max_batch from environment variable TMF_EVENTS_MAX_BATCH"
    assert s.origin("app_id") == f"app_id from file {path}:1"
    assert s.origin("kafka", "linger.ms") == f"kafka.linger.ms from file {path}:3"
    assert (
        s.origin("kafka", "client.rack")
        == "kafka.client.rack from environment variable TMF_EVENTS_KAFKA__client.rack"
    )
    assert s.origin("history") == "history from default"
    assert (s.kafka["client.rack"], s.max_batch) == ("r2", 500)


def test_new_settings_and_their_defaults():
    s = load_settings()
    assert s.connect_timeout_ms == 30_000
    assert s.progress_interval_s == 30
    assert s.events_retention_ms == 365 * 24 * 3600 * 1000
    assert load_settings(progress_interval_s=0).progress_interval_s == 0
    assert load_settings(events_retention_ms=-1).events_retention_ms == -1
    for name, bad in (
        ("connect_timeout_ms", 0),
        ("progress_interval_s", -1),
        ("events_retention_ms", -2),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings(**{name: bad})


def test_an_unknown_environment_variable_is_refused_with_a_guess(monkeypatch):
    monkeypatch.setenv("TMF_EVENTS_PRIVATE_FILEDS", '["note"]')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.origin == "private_fileds from environment variable TMF_EVENTS_PRIVATE_FILEDS"
    assert "did you mean TMF_EVENTS_PRIVATE_FIELDS?" in info.value.hint


def test_kubernetes_service_links_are_no_typos(monkeypatch):
    # What the kubelet injects for a Service named tmf-events-api in the same namespace.
    for name, value in {
        "TMF_EVENTS_API_SERVICE_HOST": "10.0.0.7",
        "TMF_EVENTS_API_SERVICE_PORT": "8080",
        "TMF_EVENTS_API_SERVICE_PORT_HTTP": "8080",
        "TMF_EVENTS_API_PORT": "tcp://10.0.0.7:8080",
        "TMF_EVENTS_API_PORT_8080_TCP": "tcp://10.0.0.7:8080",
        "TMF_EVENTS_API_PORT_8080_TCP_ADDR": "10.0.0.7",
        "TMF_EVENTS_API_PORT_8080_TCP_PORT": "8080",
        "TMF_EVENTS_API_PORT_8080_TCP_PROTO": "tcp",
    }.items():
        monkeypatch.setenv(name, value)
    assert load_settings().app_id == "tmf-events"
    monkeypatch.setenv("TMF_EVENTS_HTTP_PROT", "8080")  # a typo, not a service link
    with pytest.raises(ConfigError, match="TMF_EVENTS_HTTP_PORT"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "example"),
    [
        ("PRIVATE_FIELDS", "note, billing.account", '\'["note","billing.account"]\''),
        ("KAFKA", "security.protocol=SSL", """'{"security.protocol": "SSL"}'"""),
        ("ENVELOPE", "domain=inventory", """'{"name": "value"}'"""),
    ],
)
def test_json_is_asked_for_where_it_is_expected(monkeypatch, name, value, example):
    monkeypatch.setenv(f"TMF_EVENTS_{name}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"TMF_EVENTS_{name} must be a JSON" in message
    assert f"from environment variable TMF_EVENTS_{name}" in message
    assert example in message


@pytest.mark.parametrize(
    ("text", "what", "origin", "guess"),
    [
        (
            "envelope:\n  titel: Inventory\n",
            "unknown setting envelope.titel",
            "envelope.titel from file {file}:2",
            "did you mean envelope.title?",
        ),
        (
            "kafka:\n  linger.ms: 5\n  lingr.ms: 5\n",
            "unknown kafka property lingr.ms",
            "kafka.lingr.ms from file {file}:3",
            "did you mean linger.ms?",
        ),
    ],
)
def test_nested_unknown_names_get_their_place_and_a_guess(yaml_file, text, what, origin, guess):
    path = yaml_file(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.what == what
    assert info.value.origin == origin.format(file=path)
    assert guess in info.value.hint


def test_a_guarded_kafka_property_says_who_sets_it():
    with pytest.raises(ConfigError) as guarded:
        load_settings(kafka={"isolation.level": "read_uncommitted"})
    assert "set by tmf-events itself" in guarded.value.what
    assert "the processor reads read_committed" in guarded.value.hint


def test_several_problems_are_one_line_naming_them_all(yaml_file):
    path = yaml_file("max_batch: 0\ntmf_version: v9\nmax_bach: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    line = info.value.line("run")
    assert "\n" not in line
    assert line.startswith("tmf-events run: invalid tmf_version")
    assert "also wrong: max_batch, max_bach" in line
