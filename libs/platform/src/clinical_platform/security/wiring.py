"""Building the security kernel's pieces from settings, for a service's bootstrap.py."""

from __future__ import annotations

import hvac

from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.vault_adapters import (
    KvWrappedKeyStore,
    TransitKeyEncryption,
    TransitSigner,
)
from clinical_platform.settings import BaseServiceSettings


def build_keyring(client: hvac.Client, settings: BaseServiceSettings) -> PatientKeyring:
    """The keyring on the configured Transit KEK and key store (call ``start()`` on it)."""
    return PatientKeyring(
        TransitKeyEncryption(client, settings.vault_phi_key, settings.vault_transit_mount),
        KvWrappedKeyStore(client, settings.vault_key_store_mount),
        KeyringConfig.from_settings(settings),
    )


def build_signer(client: hvac.Client, settings: BaseServiceSettings) -> TransitSigner:
    """The audit checkpoint signer on the configured ed25519 Transit key."""
    return TransitSigner(client, settings.vault_audit_signing_key, settings.vault_transit_mount)
