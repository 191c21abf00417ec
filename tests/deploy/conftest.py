"""Fixtures of the deploy checks: the cached tools, the chart, and a loopback kube-apiserver.

Everything here runs in `make deploy-check`, not in `make test`: the checks need the tools
`make tools` builds (helm, tflint, etcd, kube-apiserver, kubectl).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localinfra import kube, tools
from localinfra.config import REPO_ROOT, InfraConfig

CHART = REPO_ROOT / "deploy" / "helm" / "clinical-platform"
EXAMPLE_VALUES = sorted((CHART / "examples").glob("*.yaml"))
TERRAFORM = REPO_ROOT / "infra" / "terraform"
# The Kubernetes version the chart is rendered for: the one the local API server is built at.
KUBE_VERSION = "1.37.0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(scope="session")
def tool_bin() -> Path:
    """The folder of the tools, with the Go-built checkers (built on first use, then cached).

    `make deploy-check` installs every tool first (`make tools`, checkov included); the API
    server's are built by the kube_apiserver fixture when a test run needs them.
    """
    return tools.install(InfraConfig.from_env(), ["helm", "tflint", "kubeconform", "kube-score"])


def run(
    argv: list[str], *, check: bool = True, env: dict[str, str] | None = None, stderr: bool = True
) -> str:
    """Run a tool and return its output (stdout only, without ``stderr``); a failure shows both."""
    completed = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=env, timeout=300
    )
    if check:
        assert completed.returncode == 0, (
            f"{' '.join(argv)} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"
        )
    return completed.stdout + (completed.stderr if stderr else "")


def helm_template(tool_bin: Path, *args: str) -> list[dict[str, Any]]:
    """Render the chart (release "clinical", namespace "clinical") into its objects."""
    rendered = run([
        str(tool_bin / "helm"), "template", "clinical", str(CHART),
        "--namespace", "clinical", "--kube-version", KUBE_VERSION, *args,
    ], stderr=False)  # fmt: skip
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.KubeAPIServer]:
    """etcd and kube-apiserver on 127.0.0.1, RBAC on, stopped at the end of the session."""
    server = kube.start(InfraConfig.from_env(), tmp_path_factory.mktemp("kube"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kube_env(
    kube_apiserver: kube.KubeAPIServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """An environment whose helm and kubectl talk to the local API server only."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(kube_apiserver.kubeconfig),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    return env
