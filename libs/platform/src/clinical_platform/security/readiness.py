"""Vault as a readiness check: health is NOT_SERVING while Vault is sealed or unreachable.

PHI is written and read through Vault, so a replica that cannot reach it fails every such call
closed; reporting NOT_SERVING takes it out of rotation until Vault is back.
"""

from __future__ import annotations

import asyncio

import hvac

from clinical_platform.health import HealthCheck
from clinical_platform.security.errors import KeyServiceUnavailableError
from clinical_platform.security.keys import PatientKeyring
from clinical_platform.security.vault_adapters import TransitKeyEncryption
from clinical_platform.settings import BaseServiceSettings

VAULT_CHECK = "vault"


def keyring_health_check(keyring: PatientKeyring) -> HealthCheck:
    """What the keyring's own seal watch last found (it checks Vault in the background)."""

    async def failing() -> str | None:
        return keyring.unavailable_reason

    return HealthCheck(VAULT_CHECK, failing)


def vault_health_check(client: hvac.Client, settings: BaseServiceSettings) -> HealthCheck:
    """Asks Vault's seal status at each check (for a service that keeps no keyring)."""
    kek = TransitKeyEncryption(client, settings.vault_phi_key, settings.vault_transit_mount)

    async def failing() -> str | None:
        try:
            await asyncio.to_thread(kek.check_available)
        except KeyServiceUnavailableError as unavailable:
            return unavailable.reason
        return None

    return HealthCheck(VAULT_CHECK, failing)
