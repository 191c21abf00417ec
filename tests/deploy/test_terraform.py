"""infra/terraform: formatted, linted, and granting what the local stack grants (same files).

The Vault policies (infra/vault/policies/<service>.hcl) and the Kafka access definition
(infra/kafka/acls.toml) are applied for real by `make run` and the tests (localinfra), and
loaded by the Terraform modules; these tests check both halves read them alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import hcl2
import pytest

from localinfra import kafka_access, tools
from localinfra.config import REPO_ROOT, InfraConfig

from .conftest import TERRAFORM, run

POLICIES = REPO_ROOT / "infra" / "vault" / "policies"
ACLS = REPO_ROOT / "infra" / "kafka" / "acls.toml"
MODULES = ["vault", "kafka", "kafka/acls", "platform", "examples/eks"]
PHI_SERVICES = {"patient", "orders", "results", "notify"}


@pytest.fixture(scope="module")
def tofu() -> list[str]:
    """OpenTofu, built by `make tools` (cached)."""
    return [str(tools.install(InfraConfig.from_env(), ["tofu"]) / "tofu")]


def _tofu_env(tmp: Path) -> dict[str, str]:
    """An empty CLI configuration and a data dir of the test's own: nothing shared, no network."""
    env = dict(os.environ)
    env.update(TF_CLI_CONFIG_FILE=str(tmp / "none.rc"), TF_IN_AUTOMATION="1",
               TF_DATA_DIR=str(tmp / ".terraform"), CHECKPOINT_DISABLE="1")  # fmt: skip
    (tmp / "none.rc").write_text("")
    return env


def _unquoted(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip('"')
    if isinstance(value, list):
        return [_unquoted(v) for v in value]
    if isinstance(value, dict):
        return {_unquoted(k): _unquoted(v) for k, v in value.items() if k != "__is_block__"}
    return value


def _hcl(path: Path) -> dict[str, Any]:
    with path.open() as file:
        parsed: dict[str, Any] = _unquoted(hcl2.load(file))
    return parsed


def _policy(service: str) -> dict[str, set[str]]:
    blocks = _hcl(POLICIES / f"{service}.hcl").get("path", [])
    return {path: set(rule["capabilities"]) for block in blocks for path, rule in block.items()}


def test_terraform_is_formatted(tofu: list[str], tmp_path: Path) -> None:
    run([*tofu, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], env=_tofu_env(tmp_path))


def test_tflint_finds_nothing(tool_bin: Path) -> None:
    config = TERRAFORM / ".tflint.hcl"
    completed = subprocess.run(
        [str(tool_bin / "tflint"), "--recursive", f"--config={config}", "--format=compact"],
        cwd=TERRAFORM, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_acl_reader_module_validates_offline(tofu: list[str], tmp_path: Path) -> None:
    env = _tofu_env(tmp_path)
    module = str(TERRAFORM / "kafka" / "acls")
    run([*tofu, f"-chdir={module}", "init", "-backend=false", "-input=false"], env=env)
    run([*tofu, f"-chdir={module}", "validate"], env=env)


def test_terraform_reads_the_kafka_definition_as_localinfra_does(
    tofu: list[str], tmp_path: Path
) -> None:
    (tmp_path / "main.tf").write_text(
        f'module "acls" {{\n  source   = "{TERRAFORM / "kafka" / "acls"}"\n'
        f'  acl_file = "{ACLS}"\n}}\n'
    )
    env = _tofu_env(tmp_path)
    run([*tofu, f"-chdir={tmp_path}", "init", "-input=false"], env=env)
    completed = subprocess.run(
        [*tofu, f"-chdir={tmp_path}", "console"], input="jsonencode(module.acls.principals)\n",
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    read_by_terraform = json.loads(json.loads(completed.stdout))
    definition = tomllib.loads(ACLS.read_text())
    expected = {principal: {kind: grants.get(kind, []) for kind in kafka_access.GRANTS}
                for principal, grants in definition.items()}  # fmt: skip
    assert read_by_terraform == expected


def test_terraform_grants_the_operations_localinfra_grants() -> None:
    grants = _hcl(TERRAFORM / "kafka" / "main.tf")["locals"][0]["grants"]

    def upper_snake(name: str) -> str:
        return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()

    as_terraform = {kind: (upper_snake(g["type"]).replace("_I_D", "_ID"),
                           {upper_snake(op) for op in g["operations"]})
                    for kind, g in grants.items()}  # fmt: skip
    as_localinfra = {
        kind: (resource, set(ops)) for kind, (resource, ops) in kafka_access.GRANTS.items()
    }
    assert as_terraform == as_localinfra


def test_terraform_loads_each_services_policy_from_the_shared_files() -> None:
    module = TERRAFORM / "vault"
    policy = _hcl(module / "main.tf")["resource"]
    resource = next(r["vault_policy"]["service"] for r in policy if "vault_policy" in r)
    assert resource["policy"] == '${file("${local.policy_dir}/${each.key}.hcl")}'
    locals_ = _hcl(module / "main.tf")["locals"][0]
    assert (
        locals_["policy_dir"]
        == '${coalesce(var.policy_dir, "${path.module}/../../vault/policies")}'
    )
    assert (module / "../../vault/policies").resolve() == POLICIES
    services = next(
        v["services"] for v in _hcl(module / "variables.tf")["variable"] if "services" in v
    )
    assert set(services["default"]) == {p.stem for p in POLICIES.glob("*.hcl")}


def test_the_kafka_module_reads_the_shared_definition() -> None:
    module = _hcl(TERRAFORM / "kafka" / "main.tf")["module"][0]["definition"]
    assert module["acl_file"] == '${coalesce(var.acl_file, "${path.module}/../../kafka/acls.toml")}'
    assert (TERRAFORM / "kafka" / "../../kafka/acls.toml").resolve() == ACLS


@pytest.mark.parametrize("service", sorted(p.stem for p in POLICIES.glob("*.hcl")))
def test_each_vault_policy_grants_only_its_services_paths(service: str) -> None:
    policy = _policy(service)
    for path, capabilities in policy.items():
        assert path.startswith(("transit/", "clinical-keys/")) or capabilities == {"deny"}, path
        assert not capabilities & {"sudo", "list"}, f"{service}: {path} {capabilities}"
        if "clinical-phi" in path or path.startswith("clinical-keys/"):
            assert service in PHI_SERVICES, f"{service} reaches PHI keys at {path}"
        if path.startswith("clinical-keys/metadata/") or (
            path.startswith("clinical-keys/data/forgotten/") and "create" in capabilities
        ):
            assert service == "patient", f"only patient forgets; {service} has {path}"
        if path.startswith("clinical-keys/data/patients/") and service in ("orders", "results"):
            # Only registering a patient (the patient service) creates their data key.
            assert capabilities == {"read"}, f"{service} may only read data keys: {capabilities}"
        if "clinical-notify" in path:
            assert service == "notify", path
        if path.startswith("transit/sign/"):
            assert service in PHI_SERVICES, f"{service} signs checkpoints at {path}"


@pytest.mark.parametrize("principal", sorted(tomllib.loads(ACLS.read_text())))
def test_each_kafka_principal_reaches_only_its_topics(principal: str) -> None:
    grants = tomllib.loads(ACLS.read_text())[principal]
    shared = ("clinical.audit.access.", "clinical.audit.checkpoints.")
    for topic in grants.get("produce", []):
        own = topic.startswith(f"clinical.{principal}.")
        assert own or topic.endswith(".dlq") or topic.startswith(shared), f"{principal} -> {topic}"
    for transactional_id in grants.get("transactional_ids", []):
        assert transactional_id.startswith(f"clinical.{principal}.events."), transactional_id
    for group in grants.get("groups", []):
        assert group in (f"{principal}.", f"projection.{principal}."), group
    if principal != "audit":
        assert "clinical." not in grants.get("consume", []), "only the auditor reads every log"


def test_the_platform_module_sets_only_values_the_chart_knows() -> None:
    values = _hcl(TERRAFORM / "platform" / "main.tf")["locals"][0]["values"]
    schema = json.loads(
        (REPO_ROOT / "deploy/helm/clinical-platform/values.schema.json").read_text()
    )

    def unknown(given: dict[str, Any], node: dict[str, Any], path: str) -> list[str]:
        found = []
        for key, value in given.items():
            child = node.get("properties", {}).get(key)
            if child is None:
                found.append(f"{path}{key}")
            elif isinstance(value, dict):
                found += unknown(value, child, f"{path}{key}.")
        return found

    assert not unknown(values, schema, "")
    secrets = {r["kubernetes_secret_v1"][name]["metadata"][0]["name"]
               for r in _hcl(TERRAFORM / "platform" / "main.tf")["resource"]
               if "kubernetes_secret_v1" in r for name in r["kubernetes_secret_v1"]}  # fmt: skip
    chart_names = {"clinical-kafka-ca", "clinical-mongodb", "clinical-gateway-signing-keys"}
    per_service = {"clinical-kafka-${each.key}", "clinical-grpc-tls-${each.key}"}
    assert chart_names | per_service <= secrets
    assert values["grpcTls"] == {"enabled": True, "secretPrefix": "clinical-grpc-tls-"}
