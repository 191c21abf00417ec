"""The Vault-API server (OpenBao) offers Transit: encrypt, decrypt, rotate, datakey, sign."""

import base64

import hvac
import pytest
from clinical_testing.plugin import TransitKeyFactory

pytestmark = pytest.mark.integration

PLAINTEXT = base64.b64encode(b"synthetic record, not PHI").decode()


def test_encrypt_rotate_and_decrypt_old_ciphertext(
    vault: hvac.Client, transit_key: TransitKeyFactory
) -> None:
    key = transit_key()
    first = vault.secrets.transit.encrypt_data(name=key, plaintext=PLAINTEXT)["data"]["ciphertext"]
    vault.secrets.transit.rotate_key(name=key)
    second = vault.secrets.transit.encrypt_data(name=key, plaintext=PLAINTEXT)["data"]["ciphertext"]

    assert first.startswith("vault:v1:")
    assert second.startswith("vault:v2:")
    for ciphertext in (first, second):
        decrypted = vault.secrets.transit.decrypt_data(name=key, ciphertext=ciphertext)
        assert decrypted["data"]["plaintext"] == PLAINTEXT


def test_wrapped_data_key_unwraps_to_the_same_key(
    vault: hvac.Client, transit_key: TransitKeyFactory
) -> None:
    key = transit_key()
    generated = vault.secrets.transit.generate_data_key(name=key, key_type="plaintext", bits=256)
    wrapped = generated["data"]["ciphertext"]
    unwrapped = vault.secrets.transit.decrypt_data(name=key, ciphertext=wrapped)

    assert len(base64.b64decode(generated["data"]["plaintext"])) == 32
    assert unwrapped["data"]["plaintext"] == generated["data"]["plaintext"]


def test_signature_verifies_and_a_changed_message_does_not(
    vault: hvac.Client, transit_key: TransitKeyFactory
) -> None:
    key = transit_key(key_type="ed25519")
    signature = vault.secrets.transit.sign_data(name=key, hash_input=PLAINTEXT)["data"]["signature"]
    tampered = base64.b64encode(b"synthetic record, not PHI!").decode()

    valid = vault.secrets.transit.verify_signed_data(
        name=key, hash_input=PLAINTEXT, signature=signature
    )
    invalid = vault.secrets.transit.verify_signed_data(
        name=key, hash_input=tampered, signature=signature
    )

    assert valid["data"]["valid"] is True
    assert invalid["data"]["valid"] is False
