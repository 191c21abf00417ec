"""Each service holds a Vault token with only its own policy (infra/vault/policies/<service>.hcl):
what it needs works, everything else is refused by the real server."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from hvac import exceptions as vault_errors

pytestmark = pytest.mark.integration

SERVICES = ("patient", "orders", "results", "notify", "audit", "gateway")
Credentials = Callable[[str], dict[str, str]]


def client_of(servers: ServerEndpoints, credentials: Credentials, service: str) -> hvac.Client:
    return hvac.Client(url=servers.vault_addr, token=credentials(service)["VAULT_TOKEN"])


def _record(client: hvac.Client, patient_id: str) -> None:
    wrapped = client.secrets.transit.generate_data_key(
        name="clinical-phi", key_type="wrapped", bits=256
    )["data"]["ciphertext"]
    client.secrets.kv.v2.create_or_update_secret(
        path=f"patients/{patient_id}", secret={"wrapped_key": wrapped}, cas=0,
        mount_point="clinical-keys",
    )  # fmt: skip


def test_no_service_holds_the_root_token(
    servers: ServerEndpoints, service_credentials: Credentials
) -> None:
    for service in SERVICES:
        token = service_credentials(service)["VAULT_TOKEN"]
        assert token, service
        assert token != servers.vault_token, service
        looked_up = client_of(servers, service_credentials, service).lookup_token()
        assert isinstance(looked_up, dict)
        assert sorted(looked_up["data"]["policies"]) == sorted(["default", service])


def test_orders_seals_with_a_patients_key_but_cannot_forget_or_manage_keys(
    servers: ServerEndpoints, service_credentials: Credentials
) -> None:
    orders = client_of(servers, service_credentials, "orders")
    patient_id = str(uuid.uuid4())

    _record(client_of(servers, service_credentials, "patient"), patient_id)  # registered
    stored = orders.secrets.kv.v2.read_secret_version(
        path=f"patients/{patient_id}", mount_point="clinical-keys", raise_on_deleted_version=True
    )
    opened = orders.secrets.transit.decrypt_data(
        name="clinical-phi", ciphertext=stored["data"]["data"]["wrapped_key"]
    )
    assert len(base64.b64decode(opened["data"]["plaintext"])) == 32

    refused: list[Callable[[], object]] = [
        lambda: _record(orders, str(uuid.uuid4())),  # a key for a patient never registered
        lambda: orders.secrets.kv.v2.delete_metadata_and_all_versions(
            path=f"patients/{patient_id}", mount_point="clinical-keys"
        ),
        lambda: orders.secrets.kv.v2.create_or_update_secret(
            path=f"forgotten/{patient_id}", secret={"forgotten_at": "now"}, cas=0,
            mount_point="clinical-keys",
        ),
        lambda: orders.secrets.kv.v2.list_secrets(path="patients", mount_point="clinical-keys"),
        lambda: orders.secrets.transit.rotate_key(name="clinical-phi"),
        lambda: orders.secrets.transit.export_key(name="clinical-phi", key_type="encryption-key"),
        lambda: orders.secrets.transit.create_key(name=f"rogue-{secrets.token_hex(4)}"),
        lambda: orders.sys.read_policy(name="patient"),
        lambda: orders.secrets.transit.encrypt_data(name="clinical-notify", plaintext="AA=="),
    ]  # fmt: skip
    for attempt in refused:
        with pytest.raises(vault_errors.Forbidden):
            attempt()


@pytest.mark.parametrize("service", ["orders", "results"])
def test_only_the_patient_service_creates_a_patients_key(
    servers: ServerEndpoints, service_credentials: Credentials, service: str
) -> None:
    other = client_of(servers, service_credentials, service)
    patient_id = str(uuid.uuid4())

    with pytest.raises(vault_errors.Forbidden):
        _record(other, patient_id)
    _record(client_of(servers, service_credentials, "patient"), patient_id)
    stored = other.secrets.kv.v2.read_secret_version(
        path=f"patients/{patient_id}", mount_point="clinical-keys", raise_on_deleted_version=True
    )
    assert str(stored["data"]["data"]["wrapped_key"]).startswith("vault:v")


def test_only_the_patient_service_destroys_a_patients_key(
    servers: ServerEndpoints, service_credentials: Credentials
) -> None:
    patient = client_of(servers, service_credentials, "patient")
    patient_id = str(uuid.uuid4())
    _record(patient, patient_id)

    for service in ("orders", "results", "notify", "audit", "gateway"):
        other = client_of(servers, service_credentials, service)
        with pytest.raises(vault_errors.Forbidden):
            other.secrets.kv.v2.delete_metadata_and_all_versions(
                path=f"patients/{patient_id}", mount_point="clinical-keys"
            )
    patient.secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"patients/{patient_id}", mount_point="clinical-keys"
    )
    with pytest.raises(vault_errors.InvalidPath):
        patient.secrets.kv.v2.read_secret_version(
            path=f"patients/{patient_id}", mount_point="clinical-keys",
            raise_on_deleted_version=True,
        )  # fmt: skip


def test_the_auditor_verifies_signatures_but_opens_no_phi(
    servers: ServerEndpoints, service_credentials: Credentials
) -> None:
    audit = client_of(servers, service_credentials, "audit")
    signer = client_of(servers, service_credentials, "orders")
    message = base64.b64encode(b"checkpoint").decode()
    signature = signer.secrets.transit.sign_data(name="clinical-audit", hash_input=message)

    verified = audit.secrets.transit.verify_signed_data(
        name="clinical-audit", hash_input=message, signature=signature["data"]["signature"]
    )
    assert verified["data"]["valid"]
    with pytest.raises(vault_errors.Forbidden):
        audit.secrets.transit.generate_data_key(name="clinical-phi", key_type="wrapped")
    with pytest.raises(vault_errors.Forbidden):
        audit.secrets.transit.sign_data(name="clinical-audit", hash_input=message)
