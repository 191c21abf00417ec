"""values.schema.json types every value and refuses unknown ones, with a message naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHART, KUBE_VERSION, run

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _walk_objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if schema.get("type") == "object" and "properties" in schema:
        found.append((path or "/", schema))
        for key, child in schema["properties"].items():
            found += _walk_objects(child, f"{path}/{key}")
    for option in schema.get("anyOf", []):
        found += _walk_objects(option, path)
    return found


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    for path, schema in _walk_objects(SCHEMA):
        assert schema.get("additionalProperties") is False, f"{path} accepts unknown keys"


def test_every_leaf_value_is_typed_and_described() -> None:
    def leaves(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
        if "properties" in schema:
            return [
                leaf
                for key, child in schema["properties"].items()
                for leaf in leaves(child, f"{path}/{key}")
            ]
        return [(path, schema)]

    for path, leaf in leaves(SCHEMA, ""):
        assert {"type", "enum", "anyOf"} & leaf.keys(), f"{path} has no type"
        assert leaf.get("description"), f"{path} has no description"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--set-string", "services.orders.replicas=two"], "at '/services/orders/replicas'"),
        (["--set", "services.orders.replicaz=2"], "additional properties 'replicaz' not allowed"),
        (["--set", "unknownTopLevel=1"], "additional properties 'unknownTopLevel' not allowed"),
        (["--set", "kafka.securityProtocol=SSL"], "at '/kafka/securityProtocol'"),
        (["--set", "grpcPort=70000"], "at '/grpcPort'"),
        (["--set", "environment=prod"], "at '/environment'"),
        (["--set", "services.notify.calls={notify}"], "at '/services/notify/calls/0'"),
    ],
    ids=[
        "replicas-two",
        "misspelt-key",
        "unknown-top-level",
        "protocol",
        "port",
        "environment",
        "self-call",
    ],
)
def test_helm_refuses_a_bad_value_naming_it(
    tool_bin: Path, override: list[str], message: str
) -> None:
    output = run(
        [
            str(tool_bin / "helm"),
            "template",
            "c",
            str(CHART),
            "--kube-version",
            KUBE_VERSION,
            *override,
        ],
        check=False,
    )
    assert "values don't meet the specifications of the schema" in output
    assert message in output, output


def test_the_values_reference_in_docs_is_current() -> None:
    script = CHART.parent / "values_reference.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
