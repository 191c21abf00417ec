"""The chart installed into a real kube-apiserver (built locally, on 127.0.0.1, RBAC on).

The API server validates, defaults and admits every object (NetworkPolicy, PDB, HPA,
StatefulSet, RBAC, Ingress ...) exactly as a cluster's would. There is no kubelet, scheduler or
controller manager: no pod runs, so what is checked is what the API server decides: that every
object is accepted and stored with the spec we rendered, that an upgrade changes what it should,
that the pod templates pass the "restricted" Pod Security Standard, and what RBAC allows.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localinfra.kube import KubeAPIServer

from .conftest import CHART, EXAMPLE_VALUES, KUBE_VERSION, run

NAMESPACE = "clinical"
RELEASE = "clinical"
PREFIX = f"{RELEASE}-clinical-platform"
# Optional objects switched on, so the server sees every kind the chart can render but the
# Prometheus Operator's (its CRDs are not installed here).
INSTALL_VALUES = [
    "--set",
    "vault.clientTokenReviewer=true",
    "--set",
    "gateway.ingress.enabled=true",
]


class Cluster:
    """helm and kubectl against the local API server."""

    def __init__(self, tool_bin: Path, env: dict[str, str]) -> None:
        self.tool_bin = tool_bin
        self.env = env

    def helm(self, *args: str) -> str:
        return run([str(self.tool_bin / "helm"), *args, "--namespace", NAMESPACE], env=self.env)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        completed = subprocess.run(
            [str(self.tool_bin / "kubectl"), "--namespace", NAMESPACE, *args],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=120, check=False,
        )  # fmt: skip
        if check:
            assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout + completed.stderr

    def live(self, manifest: str) -> list[dict[str, Any]]:
        listed = json.loads(self.kubectl("get", "-f", "-", "-o", "json", stdin=manifest))
        items: list[dict[str, Any]] = listed.get("items", [listed])
        return items

    def manifest(self) -> str:
        return self.helm("get", "manifest", RELEASE)


@pytest.fixture(scope="module")
def cluster(
    tool_bin: Path, kube_apiserver: KubeAPIServer, kube_env: dict[str, str]
) -> Iterator[Cluster]:
    """The chart installed into a namespace that enforces the restricted Pod Security Standard."""
    assert kube_apiserver.server.startswith("https://127.0.0.1:")
    cluster = Cluster(tool_bin, kube_env)
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl(
        "label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"
    )
    # What the controller manager (absent here) would make in every new namespace.
    cluster.kubectl("create", "serviceaccount", "default")
    cluster.helm("install", RELEASE, str(CHART), *INSTALL_VALUES)
    yield cluster
    cluster.helm("uninstall", RELEASE)


def _subset_mismatches(rendered: Any, live: Any, path: str = "") -> list[str]:
    """Where ``live`` differs from ``rendered``; fields the server added are not differences."""
    if isinstance(rendered, dict) and isinstance(live, dict):
        return [m for key, value in rendered.items()
                for m in _subset_mismatches(value, live.get(key), f"{path}.{key}")]  # fmt: skip
    if isinstance(rendered, list) and isinstance(live, list) and len(rendered) == len(live):
        return [m for i, pair in enumerate(zip(rendered, live, strict=True))
                for m in _subset_mismatches(*pair, f"{path}[{i}]")]  # fmt: skip
    if rendered in ([], {}) and live is None:
        return []  # the server stores an empty list or map as absent
    return [] if rendered == live else [f"{path}: rendered {rendered!r}, stored {live!r}"]


def test_install_stores_every_object_with_the_rendered_spec(cluster: Cluster) -> None:
    manifest = cluster.manifest()
    rendered = [doc for doc in yaml.safe_load_all(manifest) if doc]
    live = {(o["kind"], o["metadata"]["name"]): o for o in cluster.live(manifest)}
    kinds = {kind for kind, _ in live}
    assert {"StatefulSet", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "Service", "ServiceAccount", "ConfigMap", "ClusterRoleBinding",
            "Ingress"} <= kinds  # fmt: skip
    assert len(live) == len(rendered)
    for obj in rendered:
        stored = live[(obj["kind"], obj["metadata"]["name"])]
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        stored_body = {k: stored.get(k) for k in body}
        mismatches = _subset_mismatches(body, stored_body)
        mismatches += _subset_mismatches(obj["metadata"]["labels"], stored["metadata"]["labels"])
        assert not mismatches, f"{obj['kind']}/{obj['metadata']['name']}: {mismatches}"


def test_pod_templates_pass_the_restricted_pod_security_standard(cluster: Cluster) -> None:
    manifest = cluster.manifest()
    workloads = [o for o in cluster.live(manifest) if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 6
    for workload in workloads:
        pod = _pod_as_its_controller_would_make_it(workload)
        output = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
        assert "created (server dry run)" in output


def _pod_as_its_controller_would_make_it(workload: dict[str, Any]) -> dict[str, Any]:
    template = workload["spec"]["template"]
    name = f"{workload['metadata']['name']}-0"
    labels = dict(template["metadata"]["labels"])
    spec = dict(template["spec"])
    if workload["kind"] == "StatefulSet":
        # The StatefulSet controller adds the pod index label and a volume per claim template.
        labels["apps.kubernetes.io/pod-index"] = "0"
        claims = [c["metadata"]["name"] for c in workload["spec"]["volumeClaimTemplates"]]
        spec["volumes"] = spec.get("volumes", []) + [
            {"name": claim, "persistentVolumeClaim": {"claimName": f"{claim}-{name}"}}
            for claim in claims
        ]
    metadata = {"name": name, "labels": labels, "annotations": template["metadata"]["annotations"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def test_a_privileged_pod_is_refused_in_that_namespace(cluster: Cluster) -> None:
    """The control for the test above: the namespace really enforces the standard."""
    # No security context at all: root allowed, capabilities kept, no seccomp profile.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unconfined"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    output = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False
    )
    assert 'violates PodSecurity "restricted' in output


def test_the_helm_test_pod_is_admitted(tool_bin: Path, cluster: Cluster) -> None:
    hook = run([str(tool_bin / "helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                "--kube-version", KUBE_VERSION,
                "--show-only", "templates/tests/gateway-health.yaml"],
               env=cluster.env, stderr=False)  # fmt: skip
    assert "created (server dry run)" in cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=hook
    )


@pytest.mark.parametrize(
    ("service", "verb", "resource", "allowed"),
    [
        ("orders", "create", "tokenreviews.authentication.k8s.io", True),
        ("audit", "create", "tokenreviews.authentication.k8s.io", True),
        ("gateway", "create", "tokenreviews.authentication.k8s.io", False),
        ("orders", "get", "secrets", False),
        ("patient", "list", "pods", False),
        ("gateway", "get", "configmaps", False),
        ("notify", "create", "pods", False),
    ],
)
def test_service_accounts_may_do_only_what_vault_auth_needs(
    cluster: Cluster, service: str, verb: str, resource: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{NAMESPACE}:{PREFIX}-{service}"
    answer = cluster.kubectl("auth", "can-i", verb, resource, f"--as={account}", check=False)
    assert answer.strip().splitlines()[0] == ("yes" if allowed else "no")


def test_upgrade_with_changed_values_changes_exactly_those(cluster: Cluster) -> None:
    before = {(o["kind"], o["metadata"]["name"]): o for o in cluster.live(cluster.manifest())}
    cluster.helm("upgrade", RELEASE, str(CHART), *INSTALL_VALUES,
                 "--set", "services.orders.replicas=5", "--set", "logLevel=DEBUG",
                 "--set", "gateway.autoscaling.maxReplicas=9",
                 "--set", "services.audit.enabled=false")  # fmt: skip
    after = {(o["kind"], o["metadata"]["name"]): o for o in cluster.live(cluster.manifest())}
    orders = after[("StatefulSet", f"{PREFIX}-orders")]
    assert orders["spec"]["replicas"] == 5
    env = {
        e["name"]: e.get("value")
        for e in orders["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ORDERS_REPLICA_COUNT"] == "5"
    assert after[("ConfigMap", f"{PREFIX}-shared")]["data"]["LOG_LEVEL"] == "DEBUG"
    annotation = "checksum/config"
    old = before[("StatefulSet", f"{PREFIX}-orders")]["spec"]["template"]["metadata"]["annotations"]
    assert orders["spec"]["template"]["metadata"]["annotations"][annotation] != old[annotation]
    assert after[("HorizontalPodAutoscaler", f"{PREFIX}-gateway")]["spec"]["maxReplicas"] == 9
    assert ("StatefulSet", f"{PREFIX}-audit") not in after
    gone = cluster.kubectl("get", "statefulset", f"{PREFIX}-audit", check=False)
    assert "NotFound" in gone
    assert (
        "2"
        in cluster.helm("history", RELEASE, "--max", "1", "-o", "json").split('"revision":')[1][:3]
    )


@pytest.mark.parametrize("example", EXAMPLE_VALUES, ids=lambda path: path.stem)
def test_every_example_is_admitted_by_the_api_server(
    tool_bin: Path, cluster: Cluster, example: Path
) -> None:
    """Server-side dry run: validated and admitted, nothing stored (no Prometheus CRDs here)."""
    rendered = run([str(tool_bin / "helm"), "template", f"example-{example.stem}", str(CHART),
                    "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, "-f", str(example),
                    "--set", "monitoring.enabled=false"], stderr=False)  # fmt: skip
    output = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=rendered)
    created = [line for line in output.splitlines() if line.endswith("created (server dry run)")]
    assert len(created) == rendered.count("\nkind: ")
