"""Building the security kernel's pieces from settings, for a service's bootstrap.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import hvac

from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.clients.vault import build_vault_client, log_in
from clinical_platform.eventlog.ports import WriterRecords
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    PartitionCheckpointRunner,
)
from clinical_platform.security.checkpoints import CheckpointPolicy
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.ports import Signer
from clinical_platform.security.token_renewal import VaultTokenRenewer
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


def checkpoint_runners(
    signer: Signer, settings: BaseServiceSettings
) -> partial[PartitionCheckpointRunner]:
    """The EventStore's ``attester_factory``: a checkpoint runner per owned partition."""
    return partial(_checkpoint_runner, signer, settings)


def _checkpoint_runner(
    signer: Signer,
    settings: BaseServiceSettings,
    topic: str,
    partition: int,
    writer: WriterRecords,
) -> PartitionCheckpointRunner:
    config = CheckpointRunnerConfig(
        kafka=KafkaConnection.from_settings(settings),
        topic=topic,
        partition=partition,
        policy=CheckpointPolicy.from_settings(settings),
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
    return PartitionCheckpointRunner(config, signer, writer)


@dataclass(frozen=True)
class SecurityKernel:
    """What a writing service's bootstrap wires in: keys, payload cipher, checkpoint signer."""

    keyring: PatientKeyring
    cipher: EnvelopeCipher
    signer: TransitSigner
    # The logged-in client (its token kept renewed), for a service's own Transit keys.
    vault: hvac.Client


@asynccontextmanager
async def running_security(settings: BaseServiceSettings) -> AsyncIterator[SecurityKernel]:
    """Log in to Vault, keep the token renewed and the keyring watching Vault's seal."""
    client = build_vault_client(settings)
    async with AsyncExitStack() as stack:
        renewer = VaultTokenRenewer(client, partial(log_in, client, settings))
        await renewer.start()
        stack.push_async_callback(renewer.stop)
        keyring = build_keyring(client, settings)
        await keyring.start()
        stack.push_async_callback(keyring.stop)
        yield SecurityKernel(
            keyring, EnvelopeCipher(keyring), build_signer(client, settings), client
        )
