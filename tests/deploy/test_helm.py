"""The Helm chart: helm lint/template output checked against the code's contracts."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.config import Settings, load_settings, setting_env_names

from .conftest import (
    CHART,
    FEATURES_VALUES,
    KUBE_VERSION,
    RELEASE,
    ROOT,
    Manifest,
    find,
    helm_template,
    one,
    render,
    run,
    tool,
    workloads,
)

pytestmark = pytest.mark.deploy

# Values of the Secrets the feature set references; characters that would break naive JSON
# or shell quoting on purpose.
FAKE_SECRETS = {
    ("tmf-events-kafka-user", "username"): "svc-tmf-events",
    ("tmf-events-kafka-user", "password"): 'p@ss"w{o}rd\\ 12345',
    ("tmf-events-hub", "signing-secret"): "listener-shared-secret",
}


def containers(workload: Manifest) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def config_yaml(manifests: list[Manifest]) -> dict[str, Any]:
    return yaml.safe_load(one(manifests, "ConfigMap", "-config")["data"]["config.yaml"])  # type: ignore[no-any-return]


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "DoesNotExist" and present:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and labels.get(expr["key"]) in expr["values"]:
            return False
    return True


def container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The environment the kubelet would give the container (fieldRef and secretKeyRef resolved)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[item["name"]] = pod_name
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = FAKE_SECRETS[(ref["name"], ref["key"])]
    return env


# --- lint and schema ---------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [FEATURES_VALUES]], ids=["defaults", "features"])
def test_helm_lint_strict(values: list[Path]) -> None:
    args = [tool("helm"), "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    result = run(args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("bad_values", "message"),
    [
        ({"replicaCount": 3}, "replicaCount"),
        ({"processor": {"replicas": "three"}}, "replicas"),
        ({"config": {"commit_interval": 50}}, "commit_interval"),
        ({"config": {"tmf_version": "v6"}}, "tmf_version"),
        ({"config": {"instance_id": "fixed"}}, "instance_id"),
        ({"kafka": {"config": {"sasl.password": "in-a-configmap"}}}, "sasl.password"),
        ({"kafka": {"sasl": {"enabled": True, "mechanism": "GSSAPI"}}}, "mechanism"),
        ({"image": {"digest": "latest"}}, "digest"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_helm_lint_rejects_values_violating_the_schema(
    tmp_path: Path, bad_values: dict[str, Any], message: str
) -> None:
    values = tmp_path / "bad-values.yaml"
    values.write_text(yaml.safe_dump(bad_values), encoding="utf-8")
    result = run(
        [
            tool("helm"),
            "lint",
            "--strict",
            "--kube-version",
            KUBE_VERSION,
            str(CHART),
            "-f",
            str(values),
        ]
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stdout + result.stderr
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize("feature", ["tls", "sasl"])
def test_enabled_security_without_a_secret_fails_with_a_clear_message(feature: str) -> None:
    result = helm_template(sets=[f"kafka.{feature}.enabled=true"])
    assert result.returncode != 0
    assert f"kafka.{feature}.existingSecret is required" in result.stderr


def test_schema_covers_exactly_the_settings_the_chart_does_not_manage() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    managed = {"bootstrap_servers", "http_port", "kafka", "instance_id", "state_dir"}
    fields = set(Settings.model_fields)
    assert managed <= fields
    missing = fields - managed - set(config["properties"])
    extra = set(config["properties"]) - fields
    assert not missing, f"settings missing from values.schema.json `config`: {sorted(missing)}"
    assert not extra, (
        f"values.schema.json `config` has keys Settings does not know: {sorted(extra)}"
    )


def test_manifests_pass_kubernetes_validate(manifests: list[Manifest]) -> None:
    text = yaml.safe_dump_all(manifests)
    result = run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBE_VERSION, "-"], stdin=text
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mistake", ["unknown field", "wrong type"])
def test_kubernetes_validate_rejects_a_broken_manifest(
    default_manifests: list[Manifest], mistake: str
) -> None:
    broken = copy.deepcopy(default_manifests)
    (container,) = containers(one(broken, "StatefulSet", "-processor"))
    if mistake == "unknown field":
        container["livenessprobe"] = container.pop("livenessProbe")
    else:
        container["ports"][0]["containerPort"] = "http"
    text = yaml.safe_dump_all(broken)
    result = run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBE_VERSION, "-"], stdin=text
    )
    assert result.returncode != 0
    assert "livenessprobe" in result.stdout or "containerPort" in result.stdout


# --- processor identity ------------------------------------------------------------------


def test_statefulset_gives_each_replica_its_pod_name_as_instance_id(
    manifests: list[Manifest],
) -> None:
    sts = one(manifests, "StatefulSet", "-processor")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    headless = one(manifests, "Service", "-processor-headless")
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    (container,) = containers(sts)
    (instance,) = [e for e in container["env"] if e["name"] == "TMF_EVENTS_INSTANCE_ID"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["args"][0] == "run"


def _state_volume(sts: Manifest) -> tuple[str, dict[str, Any] | None]:
    """The processor's state_dir and the pod volume mounted there (None: a claim template)."""
    (container,) = containers(sts)
    (state_dir,) = [e["value"] for e in container["env"] if e["name"] == "TMF_EVENTS_STATE_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == state_dir]
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    return mount["name"], volumes.get(mount["name"])


def test_snapshots_live_in_an_empty_dir_by_default(default_manifests: list[Manifest]) -> None:
    sts = one(default_manifests, "StatefulSet", "-processor")
    _name, volume = _state_volume(sts)
    assert volume is not None and volume["emptyDir"]["sizeLimit"] == "2Gi"
    assert "volumeClaimTemplates" not in sts["spec"]


def test_persistent_snapshots_get_a_claim_per_pod(feature_manifests: list[Manifest]) -> None:
    sts = one(feature_manifests, "StatefulSet", "-processor")
    name, volume = _state_volume(sts)
    assert volume is None, "the claim template, not a pod volume, backs the mount"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == name
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_snapshots_can_be_switched_off() -> None:
    manifests = render(sets=["processor.snapshots.enabled=false"])
    sts = one(manifests, "StatefulSet", "-processor")
    (container,) = containers(sts)
    assert "TMF_EVENTS_STATE_DIR" not in {e["name"] for e in container["env"]}
    assert "state" not in {v["name"] for v in pod_spec(sts)["volumes"]}


def test_env_names_are_settings_and_unique(manifests: list[Manifest]) -> None:
    known = setting_env_names()
    for workload in workloads(manifests):
        for container in containers(workload):
            names = [e["name"] for e in container.get("env", [])]
            assert len(names) == len(set(names)), (
                f"duplicate env in {workload['metadata']['name']}: {names}"
            )
            unknown = {n.split("__")[0] for n in names if n.startswith("TMF_EVENTS_")} - known
            assert not unknown, (
                f"{workload['metadata']['name']} sets unknown settings {sorted(unknown)}"
            )


@pytest.mark.parametrize("values", [[], [FEATURES_VALUES]], ids=["defaults", "features"])
def test_configmap_and_env_build_valid_settings(
    values: list[Path], tmp_path: Path, clean_settings_env: pytest.MonkeyPatch
) -> None:
    """What the code will load: the ConfigMap's config.yaml plus the container env."""
    manifests = render(values)
    config = config_yaml(manifests)
    assert set(config) <= set(Settings.model_fields), "ConfigMap keys must be Settings fields"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    config_map = one(manifests, "ConfigMap", "-config")["metadata"]["name"]
    for workload in workloads(manifests):
        pod_name = f"{workload['metadata']['name']}-1"
        (container,) = containers(workload)
        assert container["args"][1:] == ["--config", "/etc/tmf-events/config.yaml"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        (config_mount,) = [
            m for m in mounts.values() if m["mountPath"] == "/etc/tmf-events/config.yaml"
        ]
        assert volumes[config_mount["name"]]["configMap"]["name"] == config_map
        with clean_settings_env.context() as env:
            for key, value in container_env(container, pod_name).items():
                env.setenv(key, value)
            settings = load_settings(path)
        if workload["kind"] == "StatefulSet":
            assert settings.instance_id == pod_name
        if workload["metadata"]["name"].endswith("-hub"):
            assert settings.instance_id == pod_name and settings.static_membership is False
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert settings.http_port == ports["http"]
        assert settings.bootstrap_servers == config["bootstrap_servers"]


def test_kafka_tls_and_sasl_come_from_secrets(
    feature_manifests: list[Manifest], tmp_path: Path, clean_settings_env: pytest.MonkeyPatch
) -> None:
    config_map = one(feature_manifests, "ConfigMap", "-config")
    for secret in FAKE_SECRETS.values():
        assert secret not in json.dumps(feature_manifests), (
            "a secret value leaked into the manifests"
        )
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    sts = one(feature_manifests, "StatefulSet", "-processor")
    (container,) = containers(sts)
    with clean_settings_env.context() as env:
        for key, value in container_env(container, "tmf-events-processor-0").items():
            env.setenv(key, value)
        settings = load_settings(path)
    kafka = settings.kafka
    # The ConfigMap's non-secret part and the Secret-backed env vars end up in one mapping.
    assert kafka["security.protocol"] == "SASL_SSL"
    assert kafka["sasl.mechanism"] == "SCRAM-SHA-512"
    assert kafka["sasl.username"] == FAKE_SECRETS[("tmf-events-kafka-user", "username")]
    assert kafka["sasl.password"] == FAKE_SECRETS[("tmf-events-kafka-user", "password")]
    assert kafka["compression.type"] == "zstd"
    assert kafka["linger.ms"] == 5
    # The certificate files are where librdkafka is told to look.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    files: dict[str, tuple[str, str]] = {}
    for name, mount_path in mounts.items():
        for source in volumes.get(name, {}).get("projected", {}).get("sources", []):
            for item in source["secret"]["items"]:
                files[f"{mount_path}/{item['path']}"] = (source["secret"]["name"], item["key"])
    assert files[str(kafka["ssl.ca.location"])] == ("kafka-cluster-ca", "ca.crt")
    assert files[str(kafka["ssl.certificate.location"])] == ("tmf-events-kafka-user", "user.crt")
    assert files[str(kafka["ssl.key.location"])] == ("tmf-events-kafka-user", "user.key")


# --- topics ----------------------------------------------------------------------------------


def test_no_topics_job_unless_asked_for(default_manifests: list[Manifest]) -> None:
    assert not find(default_manifests, "Job")
    assert not find(default_manifests, "ConfigMap", "-topics-settings")


def test_topics_job_runs_topics_with_the_processors_settings_and_secrets(
    feature_manifests: list[Manifest], tmp_path: Path, clean_settings_env: pytest.MonkeyPatch
) -> None:
    from processor.cli import build_parser

    job = one(feature_manifests, "Job", "-topics")
    settings_map = one(feature_manifests, "ConfigMap", "-topics-settings")
    hooks = [job["metadata"]["annotations"], settings_map["metadata"]["annotations"]]
    for hook in hooks:
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    # The settings file exists before the Job that reads it.
    assert int(hooks[1]["helm.sh/hook-weight"]) < int(hooks[0]["helm.sh/hook-weight"])
    # The same settings file as the processor's.
    processor_map = one(feature_manifests, "ConfigMap", "-config")
    assert settings_map["data"] == processor_map["data"]

    spec = pod_spec(job)
    (container,) = spec["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.partitions, args.replication_factor) == ("topics", 12, 3)
    assert args.config == "/etc/tmf-events/config.yaml"
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1

    # Its env: the processor's Kafka secrets and extra env (minus what is per replica).
    (processor,) = containers(one(feature_manifests, "StatefulSet", "-processor"))
    per_replica = {"TMF_EVENTS_INSTANCE_ID", "TMF_EVENTS_STATE_DIR"}
    assert container["env"] == [e for e in processor["env"] if e["name"] not in per_replica]
    # Its volumes: the hook's settings file, /tmp, the processor's certificates.
    volumes = {v["name"]: v for v in spec["volumes"]}
    processor_volumes = {
        v["name"]: v
        for v in pod_spec(one(feature_manifests, "StatefulSet", "-processor"))["volumes"]
    }
    assert volumes["config"]["configMap"]["name"] == settings_map["metadata"]["name"]
    assert volumes["kafka-tls"] == processor_volumes["kafka-tls"]
    assert container["volumeMounts"] == [
        m for m in processor["volumeMounts"] if m["name"] in volumes
    ]
    # What `tmf-events topics` will load: complete Kafka settings, credentials included.
    path = tmp_path / "config.yaml"
    path.write_text(settings_map["data"]["config.yaml"], encoding="utf-8")
    with clean_settings_env.context() as env:
        for key, value in container_env(container, "topics").items():
            env.setenv(key, value)
        settings = load_settings(path)
    assert settings.kafka["sasl.password"] == FAKE_SECRETS[("tmf-events-kafka-user", "password")]
    assert settings.events_retention_ms == 63_072_000_000
    # A hook runs before the chart's service account exists: the namespace default then.
    assert "serviceAccountName" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


# --- probes, ports, security -------------------------------------------------------------


def test_probes_use_healthz_and_readyz_on_the_http_port(manifests: list[Manifest]) -> None:
    http_port = config_yaml(manifests)["http_port"]
    found = list(workloads(manifests))
    assert {w["kind"] for w in found} == {"StatefulSet", "Deployment"}
    for workload in found:
        (container,) = containers(workload)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": http_port}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_pods_run_non_root_with_a_read_only_root(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] != 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        # No Service links: Services named tmf-events-* would inject TMF_EVENTS_* variables.
        assert spec["enableServiceLinks"] is False
        (container,) = containers(workload)
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert ctx.get("privileged", False) is False
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp, "a writable /tmp"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[tmp[0]["name"]]
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_pod_security_matches_the_image_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (uid,) = re.findall(r"^USER (\d+)", dockerfile, re.MULTILINE)
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


# --- services, monitoring ----------------------------------------------------------------


def test_services_select_their_pods(manifests: list[Manifest]) -> None:
    pods = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for w in workloads(manifests)
    }
    for service in find(manifests, "Service"):
        selected = [
            name
            for name, labels in pods.items()
            if labels_match({"matchLabels": service["spec"]["selector"]}, labels)
        ]
        assert len(selected) == 1, f"{service['metadata']['name']} selects {selected}"
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] == "http"


def test_service_monitor_scrapes_processor_api_and_hub_but_not_the_headless_service(
    feature_manifests: list[Manifest],
) -> None:
    monitor = one(feature_manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    scraped = {
        s["metadata"]["name"]
        for s in find(feature_manifests, "Service")
        if labels_match(monitor["spec"]["selector"], s["metadata"]["labels"])
    }
    assert scraped == {f"{RELEASE}-processor", f"{RELEASE}-api", f"{RELEASE}-hub"}
    jobs = {
        s["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        for s in find(feature_manifests, "Service")
        if s["metadata"]["name"] in scraped
    }
    # The same job names as deploy/prometheus.yml, which the alert rules rely on.
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    assert jobs == {j["job_name"] for j in prometheus["scrape_configs"]} - {"prometheus"}


def test_prometheus_rule_carries_deploy_alerts(feature_manifests: list[Manifest]) -> None:
    rule = one(feature_manifests, "PrometheusRule")
    alerts = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text(encoding="utf-8"))
    assert rule["spec"] == alerts


def test_grafana_dashboard_configmap_is_the_compose_dashboard(
    feature_manifests: list[Manifest],
) -> None:
    dashboard = one(feature_manifests, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["tmf-events.json"])
    compose = json.loads(
        (ROOT / "deploy" / "grafana" / "dashboards" / "tmf-events.json").read_text(encoding="utf-8")
    )
    assert shipped == compose


def test_optional_objects_are_off_by_default(default_manifests: list[Manifest]) -> None:
    kinds = {m["kind"] for m in default_manifests}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler"}
    assert not find(default_manifests, "ConfigMap", "-dashboard")


# --- scaling and disruption --------------------------------------------------------------


def test_autoscalers_target_the_workloads(feature_manifests: list[Manifest]) -> None:
    targets = {(w["kind"], w["metadata"]["name"]): w for w in workloads(feature_manifests)}
    hpas = find(feature_manifests, "HorizontalPodAutoscaler")
    assert len(hpas) == 2
    for hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        workload = targets[(ref["kind"], ref["name"])]
        assert "replicas" not in workload["spec"], "the HPA owns the replica count"
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_disruption_budgets_cover_each_workload(manifests: list[Manifest]) -> None:
    pdbs = find(manifests, "PodDisruptionBudget")
    for workload in workloads(manifests):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if labels_match(p["spec"]["selector"], labels)]
        assert len(matching) == 1, workload["metadata"]["name"]


def test_api_can_be_switched_off() -> None:
    manifests = render(sets=["api.enabled=false", "api.autoscaling.enabled=true"])
    assert not [
        m for m in manifests if m["metadata"]["labels"].get("app.kubernetes.io/component") == "api"
    ]


def test_long_release_names_stay_within_kubernetes_limits() -> None:
    release = "tmf-events-for-the-production-inventory-of-region-eu1"  # helm's limit: 53
    assert len(release) == 53
    manifests = render([FEATURES_VALUES], release=release)
    names = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(names) == len(set(names)), "truncation made two objects collide"
    for _, name in names:
        assert len(name) <= 63 and not name.endswith("-"), name
    sts = one(manifests, "StatefulSet")
    # Pod names carry the controller-revision-hash label: keep the StatefulSet name <= 52.
    assert len(sts["metadata"]["name"]) <= 52


@pytest.mark.parametrize("values", [[], [FEATURES_VALUES]], ids=["defaults", "features"])
def test_notes_render(values: list[Path], tmp_path: Path) -> None:
    """NOTES.txt is not rendered by `helm template`: render it as a ConfigMap in a copy."""
    chart = tmp_path / "tmf-events"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "notes.tpl").write_text(
        (CHART / "templates" / "NOTES.txt").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.tpl") . | quote }}\n',
        encoding="utf-8",
    )
    (notes_map,) = [m for m in render(values, chart=chart) if m["metadata"]["name"] == "notes"]
    notes = notes_map["data"]["notes"]
    assert f"statefulset/{RELEASE}-processor" in notes
    assert "<no value>" not in notes


def _value_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Documented keys: leaves, plus maps documented as a whole (free-form or defaults)."""
    whole = {"resources", "podSecurityContext", "securityContext", "labels", "config"}
    keys: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in whole:
            keys += _value_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def test_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    keys = set(_value_keys(values))
    assert not keys - table, f"values missing from the README table: {sorted(keys - table)}"
    assert not table - keys, f"README documents values that do not exist: {sorted(table - keys)}"
