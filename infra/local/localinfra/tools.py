"""Developer and deploy-check tools (buf, helm, tflint, tofu, kubeconform, kube-score, etcd,
kube-apiserver, kubectl), built from their Go modules and cached."""

from __future__ import annotations

import re
from pathlib import Path

from . import builds
from .config import InfraConfig

# module folder under infra/local/go -> the package to `go install` from it
GO_TOOLS = {
    "buf": "github.com/bufbuild/buf/cmd/buf",
    "helm": "helm.sh/helm/v3/cmd/helm",
    "tflint": "github.com/terraform-linters/tflint",
    "tofu": "github.com/opentofu/opentofu/cmd/tofu",
    # Checks of the rendered chart (tests/deploy).
    "kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform",
    "kube-score": "github.com/zegl/kube-score/cmd/kube-score",
    # A loopback Kubernetes API server for the deploy checks (localinfra/kube.py).
    "etcd": ".",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kubectl": ".",
}
# Kubernetes stamps its version at link time; without it the API server reports v0.0.0 and
# `helm install` refuses a chart with a kubeVersion constraint.
KUBERNETES_STAMPED = ("kube-apiserver", "kubectl")
_KUBERNETES_REQUIREMENT = re.compile(
    r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\d+\.\d+\.\d+)\b", re.MULTILINE
)


def install(config: InfraConfig, names: list[str]) -> Path:
    """Build the named tools (all when empty) and link them into <cache>/bin; return that dir."""
    bin_dir = config.cache_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names or list(GO_TOOLS):
        ldflags = kubernetes_version_ldflags() if name in KUBERNETES_STAMPED else ()
        binary = builds.go_binary(config, name, GO_TOOLS[name], ldflags)
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    return bin_dir


def kubernetes_version() -> str:
    """The Kubernetes release the API server is built at (its wrapper module's requirement)."""
    go_mod = (builds.RECIPES / "go" / "kube-apiserver" / "go.mod").read_text()
    matched = _KUBERNETES_REQUIREMENT.search(go_mod)
    if matched is None:
        raise builds.BuildError(
            "infra/local/go/kube-apiserver/go.mod requires no k8s.io/kubernetes"
        )
    return matched[1]


def kubernetes_version_ldflags() -> tuple[str, ...]:
    version = kubernetes_version()
    major, minor, _ = version.removeprefix("v").split(".")
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return tuple(
        f"-X {package}/version.{name}={value}"
        for package in ("k8s.io/component-base", "k8s.io/client-go/pkg")
        for name, value in stamps.items()
    )
