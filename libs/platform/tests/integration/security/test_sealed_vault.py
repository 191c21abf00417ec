"""A sealed Vault: PHI writes fail closed, cached keys included, and resume once it is unsealed.

Uses a private OpenBao (own folder and port) set up by localinfra exactly like the shared one,
so sealing it disturbs no other test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from clinical_testing.isolated import PrivateOpenBao, private_openbao
from clinical_testing.security import patient_envelope
from clinical_testing.waiting import eventually
from google.protobuf.wrappers_pb2 import StringValue

from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import KeyServiceUnavailableError
from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.vault_adapters import KvWrappedKeyStore, TransitKeyEncryption

pytestmark = pytest.mark.integration

NAME = "Jane Q. Doe"


@pytest.fixture(scope="module")
def private_vault(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateOpenBao]:
    with private_openbao(Path(pytestconfig.rootpath), tmp_path_factory.mktemp("sealed")) as vault:
        yield vault


def _keyring(client: hvac.Client) -> PatientKeyring:
    # The names localinfra configures (the settings' defaults).
    return PatientKeyring(
        TransitKeyEncryption(client, "clinical-phi"),
        KvWrappedKeyStore(client, "clinical-keys"),
        KeyringConfig(health_interval_s=0.1, call_timeout_s=10),
    )


async def test_sealed_vault_fails_phi_writes_closed_until_it_is_unsealed(
    private_vault: PrivateOpenBao,
) -> None:
    client = private_vault.client()
    warm, cold = str(uuid.uuid4()), str(uuid.uuid4())
    keyring = _keyring(client)
    await keyring.start()
    try:
        cipher = EnvelopeCipher(keyring, creates_keys=True)
        before = patient_envelope(warm, str(uuid.uuid4()), 1, NAME)
        await cipher.encrypt(before)  # the warm patient's key is now cached

        client.sys.seal()
        await eventually(lambda: not keyring.available, within_s=5)  # the health watch noticed

        for patient in (warm, cold):
            envelope = patient_envelope(patient, str(uuid.uuid4()), 2, NAME)
            with pytest.raises(KeyServiceUnavailableError, match="sealed"):
                await cipher.encrypt(envelope)
            assert StringValue.FromString(envelope.payload).value == NAME
            assert not envelope.payload_encryption.key_id
        with pytest.raises(KeyServiceUnavailableError, match="sealed"):
            await _keyring(client).get_or_create(cold)  # a keyring that never saw Vault up
        with pytest.raises(KeyServiceUnavailableError):
            await cipher.decrypt(before)

        private_vault.unseal()
        assert await keyring.check_health()
        assert StringValue.FromString(await cipher.decrypt(before)).value == NAME
    finally:
        await keyring.stop()
