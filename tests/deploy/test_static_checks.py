"""The rendered chart, infra/terraform and the Dockerfile: kubeconform, kube-score and checkov."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import CHART, EXAMPLE_VALUES, KUBE_VERSION, TERRAFORM, helm_template

REPO = CHART.parents[2]
VALUE_SETS: list[list[str]] = [["--set", "gateway.ingress.enabled=true"]] + [
    ["-f", str(path)] for path in EXAMPLE_VALUES
]
VALUE_SET_IDS = ["defaults"] + [path.stem for path in EXAMPLE_VALUES]
# kube-score checks left out, and why:
KUBE_SCORE_IGNORED = {
    # IfNotPresent is right for pinned (immutable) images.
    "container-image-pull-policy",
    # topologySpreadConstraints spread the replicas over nodes and zones instead.
    "statefulset-has-host-podantiaffinity",
    "deployment-has-host-podantiaffinity",
}


@pytest.fixture(scope="module")
def kubeconform_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubernetes-validate's schemas for our kinds, made standalone for kubeconform.

    They refer to one shared definitions file by an absolute URL; kubeconform would fetch it
    from the network, so each schema gets the definitions inline.
    """
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    strict = source / f"v{KUBE_VERSION}-local-strict"
    definitions = json.loads((strict / "_definitions.json").read_text())["$defs"]
    folder = tmp_path_factory.mktemp("schemas") / f"v{KUBE_VERSION}-standalone-strict"
    folder.mkdir()
    for path in strict.glob("*.json"):
        if path.name.startswith("_"):
            continue
        text = path.read_text().replace("/api/_definitions.json#/$defs/", "#/$defs/")
        schema: dict[str, Any] = json.loads(text)
        schema.pop("$id", None)
        schema["$defs"] = definitions
        (folder / path.name).write_text(json.dumps(schema))
    return folder.parent


def _rendered(tool_bin: Path, values: list[str], tmp_path: Path) -> Path:
    objects = [o for o in helm_template(tool_bin, *values)
               if not o["apiVersion"].startswith("monitoring.coreos.com/")]  # fmt: skip
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return path


def _check(argv: list[str], cwd: Path = REPO) -> str:
    completed = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert completed.returncode == 0, f"{' '.join(argv)}:\n{completed.stdout}{completed.stderr}"
    return completed.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_kubeconform_strict_accepts_every_rendered_object(
    tool_bin: Path, kubeconform_schemas: Path, values: list[str], tmp_path: Path
) -> None:
    location = str(kubeconform_schemas) + "/{{ .NormalizedKubernetesVersion }}-standalone"
    location += "{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    output = _check([str(tool_bin / "kubeconform"), "-strict", "-summary", "-kubernetes-version",
                     KUBE_VERSION, "-schema-location", location,
                     str(_rendered(tool_bin, values, tmp_path))])  # fmt: skip
    assert "Invalid: 0, Errors: 0, Skipped: 0" in output


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_kube_score_finds_nothing(tool_bin: Path, values: list[str], tmp_path: Path) -> None:
    _check([str(tool_bin / "kube-score"), "score", "--output-format", "ci",
            "--ignore-test", ",".join(sorted(KUBE_SCORE_IGNORED)),
            str(_rendered(tool_bin, values, tmp_path))])  # fmt: skip


def _checkov(tool_bin: Path, *target: str) -> str:
    config = REPO / "deploy" / "checkov.yaml"
    checkov = tool_bin / "checkov"
    assert checkov.exists(), "checkov is installed by `make tools` (make deploy-check runs it)"
    return _check([str(checkov), "--config-file", str(config), *target])


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_SET_IDS)
def test_checkov_passes_the_rendered_chart(
    tool_bin: Path, values: list[str], tmp_path: Path
) -> None:
    rendered = _rendered(tool_bin, values, tmp_path)
    assert "Failed checks: 0" in _checkov(
        tool_bin, "-f", str(rendered), "--framework", "kubernetes"
    )


def test_checkov_passes_the_terraform(tool_bin: Path) -> None:
    assert "Failed checks: 0" in _checkov(
        tool_bin, "-d", str(TERRAFORM), "--framework", "terraform"
    )


def test_checkov_passes_the_dockerfile(tool_bin: Path) -> None:
    dockerfile = str(REPO / "Dockerfile")
    assert "Failed checks: 0" in _checkov(tool_bin, "-f", dockerfile, "--framework", "dockerfile")
