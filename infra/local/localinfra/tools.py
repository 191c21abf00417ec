"""Developer tools (buf, helm, tflint; etcd, kube-apiserver, kubectl), built and cached."""

from __future__ import annotations

from pathlib import Path

from . import builds
from .config import InfraConfig

# module folder under infra/local/go -> the package to `go install` from it
GO_TOOLS = {
    "buf": "github.com/bufbuild/buf/cmd/buf",
    "helm": "helm.sh/helm/v3/cmd/helm",
    "tflint": "github.com/terraform-linters/tflint",
    # A loopback Kubernetes API server for the deploy checks (localinfra/kube.py).
    "etcd": ".",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kubectl": ".",
}


def install(config: InfraConfig, names: list[str]) -> Path:
    """Build the named tools (all when empty) and link them into <cache>/bin; return that dir."""
    bin_dir = config.cache_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names or list(GO_TOOLS):
        binary = builds.go_binary(config, name, GO_TOOLS[name])
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    return bin_dir
