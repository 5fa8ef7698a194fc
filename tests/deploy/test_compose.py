"""docker-compose.yml: docker-compose's own model of the file, plus the contracts with the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.config import HTTP_PORTS, Settings, setting_env_names

from .conftest import COMPOSE_FILE, ROOT, compose_config, run, tool

pytestmark = pytest.mark.deploy

LOCAL_IMAGE = "tmf-events:local"


def tmf_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in model["services"].items() if svc.get("image") == LOCAL_IMAGE}


def by_command(model: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in tmf_services(model).items() if svc["command"][0] == command}


def test_compose_config_is_valid_without_an_env_file() -> None:
    result = compose_config(COMPOSE_FILE, "--quiet", profile="load")
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr


def test_compose_spec_schema() -> None:
    result = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_rejects_a_dependency_on_an_undefined_service(tmp_path: Path) -> None:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    data["services"]["processor-1"]["depends_on"]["schema-registry"] = {
        "condition": "service_healthy"
    }
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = compose_config(broken)
    assert result.returncode != 0
    assert "schema-registry" in result.stderr


def test_processor_replicas_have_distinct_stable_instance_ids(
    compose_model: dict[str, Any],
) -> None:
    processors = by_command(compose_model, "run")
    assert len(processors) >= 2, "at least two replicas of one consumer group"
    ids = [svc["environment"].get("TMF_EVENTS_INSTANCE_ID") for svc in processors.values()]
    assert all(ids), (
        "every replica sets TMF_EVENTS_INSTANCE_ID explicitly (not the random container id)"
    )
    assert len(set(ids)) == len(ids), f"instance ids must differ: {ids}"
    app_ids = {
        svc["environment"].get("TMF_EVENTS_APP_ID", "tmf-events") for svc in processors.values()
    }
    assert len(app_ids) == 1, "the replicas form one consumer group"


def test_each_replica_keeps_its_snapshots_in_a_volume_of_its_own(
    compose_model: dict[str, Any],
) -> None:
    sources = []
    for name, svc in by_command(compose_model, "run").items():
        state_dir = svc["environment"].get("TMF_EVENTS_STATE_DIR")
        assert state_dir, f"{name} keeps no snapshots"
        (volume,) = [v for v in svc.get("volumes", []) if v["target"] == state_dir]
        assert volume["type"] == "volume", f"{name}: a named volume survives re-creation"
        sources.append(volume["source"])
    assert len(set(sources)) == len(sources), f"replicas share a snapshot volume: {sources}"


def test_every_tmf_events_service_builds_the_local_dockerfile(
    compose_model: dict[str, Any],
) -> None:
    services = tmf_services(compose_model)
    assert {svc["command"][0] for svc in services.values()} >= {"topics", "run", "api", "load"}
    for name, svc in services.items():
        assert svc["build"]["context"] == str(ROOT), name
        assert svc["build"]["dockerfile"] == "Dockerfile", name


def test_startup_order(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    kafka = services["kafka"]
    assert kafka["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    (topics_name, topics), *_ = by_command(compose_model, "topics").items()
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"
    for command in ("run", "api", "load"):
        for name, svc in by_command(compose_model, command).items():
            assert (
                svc["depends_on"][topics_name]["condition"] == "service_completed_successfully"
            ), name


def test_kafka_is_apache_kafka_in_kraft_mode(compose_model: dict[str, Any]) -> None:
    kafka = compose_model["services"]["kafka"]
    repository, _, tag = kafka["image"].partition(":")
    assert repository == "apache/kafka"
    assert tag and tag != "latest"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in " ".join(env).lower()
    # Transactions on a single broker need replication factor 1 for the internal topics.
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    advertised = {item.split("://")[1] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, svc in tmf_services(compose_model).items():
        assert svc["environment"]["TMF_EVENTS_BOOTSTRAP_SERVERS"] in advertised, name


def test_images_are_pinned(compose_model: dict[str, Any]) -> None:
    for name, svc in compose_model["services"].items():
        if svc.get("image") == LOCAL_IMAGE:
            continue
        _, _, tag = svc["image"].rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {svc['image']}"


def test_load_generator_only_under_the_load_profile(compose_model: dict[str, Any]) -> None:
    (name, load), *_ = by_command(compose_model, "load").items()
    assert load["profiles"] == ["load"]
    command = load["command"]
    assert "--count" in command and "--rate" in command
    int(command[command.index("--count") + 1])
    float(command[command.index("--rate") + 1])
    result = compose_config(COMPOSE_FILE, "--services")
    assert result.returncode == 0, result.stderr
    assert name not in result.stdout.split()


def test_env_names_are_settings(compose_model: dict[str, Any]) -> None:
    known = setting_env_names()
    for name, svc in tmf_services(compose_model).items():
        unknown = {
            key.split("__")[0]
            for key in svc.get("environment", {})
            if key.startswith("TMF_EVENTS_")
        } - known
        assert not unknown, f"{name} sets env vars the settings do not read: {sorted(unknown)}"


def test_services_environment_builds_valid_settings(
    compose_model: dict[str, Any], clean_settings_env: pytest.MonkeyPatch
) -> None:
    for name, svc in tmf_services(compose_model).items():
        with clean_settings_env.context() as env:
            for key, value in svc["environment"].items():
                env.setenv(key, value)
            settings = Settings()
        assert settings.http_port == 8080, name
        assert settings.bootstrap_servers == svc["environment"]["TMF_EVENTS_BOOTSTRAP_SERVERS"]


def test_http_ports_match_healthcheck_and_scrape_targets(compose_model: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in prometheus["scrape_configs"]
    }
    jobs = (("run", "tmf-events-processor"), ("api", "tmf-events-api"), ("hub", "tmf-events-hub"))
    for command, job in jobs:
        services = by_command(compose_model, command)
        assert targets[job] == {f"{name}:8080" for name in services}, job
    api = next(iter(by_command(compose_model, "api").values()))
    assert any(p["target"] == 8080 for p in api["ports"]), "the query API is published"
    hub = next(iter(by_command(compose_model, "hub").values()))
    assert any(p["target"] == 8080 for p in hub["ports"]), "the hub is published"
    # On the host at each command's own default port: `tmf-events latest ID` needs no --url.
    for command, svc in (("api", api), ("hub", hub)):
        assert {str(p["published"]) for p in svc["ports"]} == {str(HTTP_PORTS[command])}


def test_monitoring_services_mount_the_deploy_files(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    mounts = {
        name: {
            v["target"]: Path(v["source"]) for v in services[name]["volumes"] if v["type"] == "bind"
        }
        for name in ("prometheus", "grafana")
    }
    prom = mounts["prometheus"]
    assert prom["/etc/prometheus/prometheus.yml"] == ROOT / "deploy" / "prometheus.yml"
    assert prom["/etc/prometheus/alerts.yml"] == ROOT / "deploy" / "alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = mounts["grafana"]
    assert grafana["/etc/grafana/provisioning"] == ROOT / "deploy" / "grafana" / "provisioning"
    dashboard_targets = [t for t in grafana if t.startswith("/var/lib/grafana/dashboards")]
    assert dashboard_targets
    for source in [*prom.values(), *grafana.values()]:
        assert source.exists(), f"bind-mount source {source} is missing"
    provider = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "tmf-events.yml").read_text(
            encoding="utf-8"
        )
    )
    path = provider["providers"][0]["options"]["path"]
    assert all(t.startswith(path + "/") for t in dashboard_targets)
