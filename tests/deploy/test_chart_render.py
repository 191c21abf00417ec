"""The chart renders, lints and validates offline, with the default values and every example."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from clinical_platform.settings import BaseServiceSettings
from localinfra.config import REPO_ROOT

from .conftest import CHART, EXAMPLE_VALUES, KUBE_VERSION, helm_template, run

WRITERS = ["patient", "orders", "results", "notify", "audit"]
VALUE_SETS: list[list[str]] = [[]] + [["-f", str(path)] for path in EXAMPLE_VALUES]
VALUE_SET_IDS = ["defaults"] + [path.stem for path in EXAMPLE_VALUES]


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_chart_passes_helm_lint_strict(tool_bin: Path, values: list[str]) -> None:
    run(
        [
            str(tool_bin / "helm"),
            "lint",
            "--strict",
            str(CHART),
            "--kube-version",
            KUBE_VERSION,
            *values,
        ]
    )


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_rendered_objects_validate_against_the_kubernetes_schemas(
    tool_bin: Path, values: list[str]
) -> None:
    objects = helm_template(tool_bin, *values)
    minor = ".".join(KUBE_VERSION.split(".")[:2])
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs of the Prometheus Operator: the API server test does not have them
        kubernetes_validate.validate(obj, minor, strict=True)


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_every_object_carries_the_standard_labels(tool_bin: Path, values: list[str]) -> None:
    for obj in helm_template(tool_bin, *values):
        labels = obj["metadata"]["labels"]
        for key in ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by"):  # fmt: skip
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


def test_writers_are_statefulsets_whose_ordinal_comes_from_the_pod_index(tool_bin: Path) -> None:
    statefulsets = _by_kind(helm_template(tool_bin), "StatefulSet")
    assert sorted(statefulsets) == sorted(f"clinical-clinical-platform-{s}" for s in WRITERS)
    for service in WRITERS:
        sts = statefulsets[f"clinical-clinical-platform-{service}"]
        env = _env(_containers(sts)[0])
        prefix = service.upper()
        assert env[f"{prefix}_REPLICA_ORDINAL"] == {
            "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
        }
        assert env[f"{prefix}_REPLICA_COUNT"] == str(sts["spec"]["replicas"])
        assert env[f"{prefix}_EVENT_PARTITIONS"] == "6"
        assert env[f"{prefix}_STATE_DIR"] == "/var/lib/clinical/state"
        # PartitionOwnership formats {ordinal}; the service fills in {port}.
        name = sts["metadata"]["name"]
        address = f"{name}-{{ordinal}}.{name}-peers.clinical.svc:{{port}}"
        assert env[f"{prefix}_REPLICA_ADDRESS_TEMPLATE"] == address
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
        assert env["VAULT_K8S_ROLE"] == f"clinical-{service}"


def test_more_replicas_than_partitions_is_refused(tool_bin: Path) -> None:
    output = run(
        [str(tool_bin / "helm"), "template", "c", str(CHART), "--kube-version", KUBE_VERSION,
         "--set", "services.orders.replicas=7"],
        check=False,
    )  # fmt: skip
    assert "services.orders.replicas (7) exceeds kafka.eventPartitions (6)" in output


def test_pods_are_locked_down(tool_bin: Path) -> None:
    objects = helm_template(tool_bin)
    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 6
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert len(pod["topologySpreadConstraints"]) == 2
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["limits"]
            assert container["resources"]["requests"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                # Mutual TLS: the pod asks its health service with its own certificate.
                command = container[probe]["exec"]["command"]
                assert command[:3] == ["python", "-m", "clinical_platform.healthcheck"]
                assert "--port=8443" in command
                assert "--cert=/etc/clinical/grpc-tls/tls.crt" in command
        checksum = workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert len(checksum) == 64


def test_only_vault_clients_mount_a_service_account_token(tool_bin: Path) -> None:
    objects = helm_template(tool_bin)
    accounts = _by_kind(objects, "ServiceAccount")
    assert len(accounts) == 6
    for name, account in accounts.items():
        assert account["automountServiceAccountToken"] is (not name.endswith("-gateway"))


def test_config_change_changes_the_pods_checksum(tool_bin: Path) -> None:
    def checksum(*args: str) -> str:
        sts = _by_kind(helm_template(tool_bin, *args), "StatefulSet")
        return str(
            sts["clinical-clinical-platform-orders"]["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
        )

    assert checksum() != checksum("--set", "logLevel=DEBUG")


def test_production_is_the_default_environment_with_kafka_over_sasl_ssl(tool_bin: Path) -> None:
    config = _by_kind(helm_template(tool_bin), "ConfigMap")["clinical-clinical-platform-shared"]
    assert config["data"]["ENVIRONMENT"] == "production"
    assert config["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["data"]["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["data"]["KAFKA_SSL_CAFILE"] == "/etc/clinical/kafka/ca.crt"
    assert config["data"]["VAULT_AUTH_METHOD"] == "kubernetes"


def test_network_policies_deny_by_default_and_keep_webhooks_out_of_private_ranges(
    tool_bin: Path,
) -> None:
    policies = _by_kind(helm_template(tool_bin), "NetworkPolicy")
    deny = policies["clinical-clinical-platform-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    notify = policies["clinical-clinical-platform-notify"]["spec"]
    webhook_blocks = [
        peer["ipBlock"] for rule in notify["egress"] for peer in rule["to"] if "ipBlock" in peer
    ]
    v4 = next(block for block in webhook_blocks if block["cidr"] == "0.0.0.0/0")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])
    orders = policies["clinical-clinical-platform-orders"]["spec"]
    assert not [peer for rule in orders["egress"] for peer in rule["to"] if "ipBlock" in peer]


# Read by others than the settings classes: the pod's own name (address templates), the
# OpenTelemetry SDK, and ENVIRONMENT, which the settings are about to gain.
NOT_SETTINGS = {
    "POD_NAME", "POD_NAMESPACE", "ENVIRONMENT",
    "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}  # fmt: skip


def test_traces_are_head_sampled_at_the_ratio_the_values_give(tool_bin: Path) -> None:
    objects = helm_template(tool_bin, "--set", "telemetry.otlpEndpoint=https://otel:4317",
                            "--set-json", "telemetry.tracesSamplingRatio=0.25")  # fmt: skip
    shared = _by_kind(objects, "ConfigMap")["clinical-clinical-platform-shared"]["data"]
    assert shared["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert shared["OTEL_TRACES_SAMPLER_ARG"] == "0.25"


def _settings_variables(service: str) -> set[str]:
    module = importlib.import_module(f"{service}.settings")
    settings_cls = next(
        value for name, value in vars(module).items()
        if name.endswith("Settings") and isinstance(value, type)
        and issubclass(value, BaseServiceSettings) and value.__module__ == module.__name__
    )  # fmt: skip
    return {settings_cls.variable_for(field) for field in settings_cls.model_fields}


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_every_variable_the_chart_sets_is_a_setting_of_that_service(
    tool_bin: Path, values: list[str]
) -> None:
    objects = helm_template(tool_bin, *values)
    shared = set(_by_kind(objects, "ConfigMap")["clinical-clinical-platform-shared"]["data"])
    for workload in (o for o in objects if o["kind"] in ("StatefulSet", "Deployment")):
        container = _containers(workload)[0]
        service = container["name"]
        known = _settings_variables(service) | NOT_SETTINGS
        unknown = (shared | set(_env(container))) - known
        assert not unknown, f"{service} does not read {sorted(unknown)}"


def test_the_gateway_reaches_the_services_it_calls_and_publishes_with_its_own_kafka_user(
    tool_bin: Path,
) -> None:
    gateway = _by_kind(helm_template(tool_bin), "Deployment")["clinical-clinical-platform-gateway"]
    env = _env(_containers(gateway)[0])
    assert env["GATEWAY_ORDERS_ADDRESS"] == "clinical-clinical-platform-orders:8443"
    assert "GATEWAY_AUDIT_ADDRESS" not in env
    assert env["KAFKA_SASL_USERNAME"]["secretKeyRef"]["name"] == "clinical-kafka-gateway"
    # Its own MongoDB database holds $export's jobs and files; without $export it needs none.
    assert env["MONGODB_URL"]["secretKeyRef"]["name"] == "clinical-mongodb"
    off = _by_kind(helm_template(tool_bin, "--set", "gateway.export.enabled=false"),
                   "Deployment")["clinical-clinical-platform-gateway"]  # fmt: skip
    assert "MONGODB_URL" not in _env(_containers(off)[0])


def test_monitoring_scrapes_every_service_and_loads_the_platforms_own_alert_rules(
    tool_bin: Path,
) -> None:
    objects = helm_template(tool_bin, "--set", "monitoring.enabled=true")
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    rules_file = (
        REPO_ROOT / "infra" / "observability" / "prometheus" / "rules" / "clinical-alerts.yml"
    )
    own_groups = yaml.safe_load(rules_file.read_text())["groups"]
    assert rule["spec"]["groups"][: len(own_groups)] == own_groups
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    for workload in (o for o in objects if o["kind"] in ("StatefulSet", "Deployment")):
        container = _containers(workload)[0]
        prefix = container["name"].upper()
        assert _env(container)[f"{prefix}_METRICS_PORT"] == "9464"
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]


def test_every_service_serves_and_calls_grpc_over_mutual_tls_with_its_own_certificate(
    tool_bin: Path,
) -> None:
    objects = helm_template(tool_bin)
    for workload in (o for o in objects if o["kind"] in ("StatefulSet", "Deployment")):
        service = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = workload["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        prefix = f"{service.upper()}_GRPC_TLS_"
        assert env[f"{prefix}CERT_FILE"] == "/etc/clinical/grpc-tls/tls.crt"
        assert env[f"{prefix}CA_FILE"] == "/etc/clinical/grpc-tls/ca.crt"
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert volumes["grpc-tls"]["secret"]["secretName"] == f"clinical-grpc-tls-{service}"


def test_production_without_mutual_tls_is_refused_with_its_reason(tool_bin: Path) -> None:
    refused = subprocess.run(
        [str(tool_bin / "helm"), "template", "t", str(CHART), "--kube-version", KUBE_VERSION,
         "--set", "grpcTls.enabled=false"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert refused.returncode != 0
    assert "environment production needs grpcTls.enabled" in refused.stderr
