"""Registered patients for tests and benchmarks whose stack runs no patient service.

Only the patient service creates a patient's data key (RegisterPatient); orders and results
refuse a command about a patient without one. A test that places orders or posts results on its
own asks `PatientRegistry.register` for a patient id: the key is created the way the patient
service creates it, by a real `PatientKeyring` built with `build_keyring`, logged in to Vault
with a token of the patient service's policy (``infra/vault/policies/patient.hcl``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import hvac
import pytest
from hvac import exceptions as vault_errors

from clinical_platform.clients.vault import build_vault_client
from clinical_platform.security.keys import PatientKeyring
from clinical_platform.security.wiring import build_keyring
from clinical_platform.settings import BaseServiceSettings
from clinical_testing.endpoints import ServerEndpoints

__all__ = ["PatientRegistry", "patient_registry", "registered_patients"]

PATIENT_POLICY = "patient"
_POLICY_FILE = Path(__file__).resolve().parents[4] / "infra/vault/policies/patient.hcl"


class PatientRegistry:
    """Creates patients' data keys as registering them in the patient service does."""

    def __init__(self, keyring: PatientKeyring) -> None:
        self._keyring = keyring

    async def register(self, patient_id: str | None = None) -> str:
        """A patient id (new, unless given) whose data key now exists in Vault."""
        patient_id = patient_id or str(uuid.uuid4())
        await self._keyring.get_or_create(patient_id)
        return patient_id


@asynccontextmanager
async def patient_registry(settings: BaseServiceSettings) -> AsyncIterator[PatientRegistry]:
    """A registry on the KEK and key store that ``settings`` name (those of the service under
    test), logged in with a short-lived token of the patient service's policy.

    ``settings`` carry the operator's Vault token (the session's root token): it only mints
    that token, which is revoked afterwards.
    """
    operator = build_vault_client(settings)
    token = await asyncio.to_thread(_patient_token, operator)
    try:
        client = hvac.Client(url=settings.vault_addr, token=token)
        yield PatientRegistry(build_keyring(client, settings))
    finally:
        await asyncio.to_thread(operator.auth.token.revoke, token)


def _patient_token(operator: hvac.Client) -> str:
    """A token holding only the patient service's policy (written first on a bare server)."""
    try:
        operator.sys.read_policy(name=PATIENT_POLICY)
    except vault_errors.InvalidPath:
        operator.sys.create_or_update_policy(name=PATIENT_POLICY, policy=_POLICY_FILE.read_text())
    created = operator.auth.token.create(
        policies=[PATIENT_POLICY], ttl="1h", no_default_policy=True
    )
    return str(created["auth"]["client_token"])


@pytest.fixture
async def registered_patients(servers: ServerEndpoints) -> AsyncIterator[PatientRegistry]:
    """``await registered_patients.register()``: a patient id whose data key exists, on the
    default KEK and key store (those of every service built from ``servers.as_env()``)."""
    settings = BaseServiceSettings.model_validate(servers.as_env() | {"grpc_port": 0})
    async with patient_registry(settings) as registry:
        yield registry
