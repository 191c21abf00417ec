"""The ports on Vault (OpenBao): Transit for the KEK and signing, KV v2 for wrapped data keys.

Every hvac call goes through `vault_call`, which turns transport and server failures into
`KeyServiceUnavailableError` (fail closed) and drops hvac's message: it quotes request paths.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import hvac
import requests
from hvac import exceptions as vault

from clinical_platform.security.errors import DataKeyRefusedError, KeyServiceUnavailableError
from clinical_platform.security.ports import WrappedKeyRecord

_PATIENTS = "patients"
_FORGOTTEN = "forgotten"


@contextmanager
def vault_call(action: str) -> Iterator[None]:
    try:
        yield
    except vault.VaultDown:
        raise KeyServiceUnavailableError(f"{action}: Vault is sealed") from None
    except (vault.Forbidden, vault.Unauthorized):
        # An expired token or a missing policy: fail closed; renewal or an operator fixes it.
        raise KeyServiceUnavailableError(f"{action}: permission denied") from None
    except (
        vault.InternalServerError,
        vault.BadGateway,
        vault.RateLimitExceeded,
        vault.UnexpectedError,
        vault.VaultNotInitialized,
    ) as failed:
        raise KeyServiceUnavailableError(f"{action}: {type(failed).__name__}") from None
    except requests.RequestException as failed:
        raise KeyServiceUnavailableError(
            f"{action}: unreachable ({type(failed).__name__})"
        ) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TransitKeyEncryption:
    """The PHI key-encryption key: a Transit ``aes256-gcm96`` key (`KeyEncryptionService`)."""

    def __init__(self, client: hvac.Client, key_name: str, mount: str = "transit") -> None:
        self._client = client
        self._key_name = key_name
        self._mount = mount

    @property
    def key_name(self) -> str:
        return self._key_name

    def generate_data_key(self) -> tuple[str, bytes]:
        # "plaintext": the key and its wrapped form in one answer. A new key is used at once,
        # and unwrapping a "wrapped" one would bring the same plaintext over the same TLS
        # connection a round trip later.
        with vault_call("generate a data key"):
            answer = self._transit.generate_data_key(
                name=self._key_name, key_type="plaintext", bits=256, mount_point=self._mount
            )
        data = answer["data"]
        return str(data["ciphertext"]), base64.b64decode(data["plaintext"])

    def unwrap(self, wrapped_key: str) -> bytes:
        with vault_call("unwrap a data key"):
            try:
                answer = self._transit.decrypt_data(
                    name=self._key_name, ciphertext=wrapped_key, mount_point=self._mount
                )
            except vault.InvalidRequest:
                raise DataKeyRefusedError(
                    "Vault refused to unwrap a data key (retired KEK version or bad ciphertext)"
                ) from None
        return base64.b64decode(answer["data"]["plaintext"])

    def rewrap(self, wrapped_key: str) -> str:
        with vault_call("rewrap a data key"):
            try:
                answer = self._transit.rewrap_data(
                    name=self._key_name, ciphertext=wrapped_key, mount_point=self._mount
                )
            except vault.InvalidRequest:
                raise DataKeyRefusedError("Vault refused to rewrap a data key") from None
        return str(answer["data"]["ciphertext"])

    def rotate(self) -> int:
        with vault_call("rotate the KEK"):
            self._transit.rotate_key(name=self._key_name, mount_point=self._mount)
        return self.versions()[1]

    def versions(self) -> tuple[int, int]:
        with vault_call("read the KEK"):
            data = self._transit.read_key(name=self._key_name, mount_point=self._mount)["data"]
        return int(data["min_decryption_version"]), int(data["latest_version"])

    def set_min_decryption_version(self, version: int) -> None:
        with vault_call("configure the KEK"):
            self._transit.update_key_configuration(
                name=self._key_name, min_decryption_version=version, mount_point=self._mount
            )

    def check_available(self) -> None:
        with vault_call("check the seal"):
            sealed = self._client.sys.read_seal_status()["sealed"]
        if sealed:
            raise KeyServiceUnavailableError("check the seal: Vault is sealed")

    @property
    def _transit(self) -> Any:
        return self._client.secrets.transit


class KvWrappedKeyStore:
    """Wrapped data keys in a KV v2 mount (`WrappedKeyStore`), ``patients/<patient id>``.

    KV v2 because deleting a secret's metadata destroys every version of it for good, and its
    check-and-set makes the first data key of a patient win when two services race to create it.
    Tombstones (``forgotten/<patient id>``) hold the time of forgetting and nothing else.
    """

    def __init__(self, client: hvac.Client, mount: str = "clinical-keys") -> None:
        self._client = client
        self._mount = mount

    def read(self, patient_id: str) -> WrappedKeyRecord | None:
        with vault_call("read a wrapped data key"):
            try:
                answer = self._kv.read_secret_version(
                    path=f"{_PATIENTS}/{patient_id}",
                    mount_point=self._mount,
                    raise_on_deleted_version=True,
                )
            except vault.InvalidPath:
                return None
        data = answer["data"]["data"]
        return WrappedKeyRecord(
            key_id=str(data["key_id"]),
            wrapped_key=str(data["wrapped_key"]),
            key_version=int(data["key_version"]),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            store_version=int(answer["data"]["metadata"]["version"]),
        )

    def create(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        return self._write(f"{_PATIENTS}/{patient_id}", _fields(record), cas=0)

    def replace(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        # A record destroyed meanwhile has no current version, so this cannot resurrect it.
        return self._write(f"{_PATIENTS}/{patient_id}", _fields(record), cas=record.store_version)

    def destroy(self, patient_id: str) -> None:
        with vault_call("destroy a wrapped data key"):
            self._kv.delete_metadata_and_all_versions(
                path=f"{_PATIENTS}/{patient_id}", mount_point=self._mount
            )

    def mark_forgotten(self, patient_id: str, at: datetime) -> None:
        # cas=0: a second forget keeps the first time; either way the tombstone exists.
        self._write(f"{_FORGOTTEN}/{patient_id}", {"forgotten_at": at.isoformat()}, cas=0)

    def is_forgotten(self, patient_id: str) -> bool:
        with vault_call("read a tombstone"):
            try:
                self._kv.read_secret_version(
                    path=f"{_FORGOTTEN}/{patient_id}",
                    mount_point=self._mount,
                    raise_on_deleted_version=True,
                )
            except vault.InvalidPath:
                return False
        return True

    def patients(self) -> list[str]:
        with vault_call("list wrapped data keys"):
            try:
                answer = self._kv.list_secrets(path=_PATIENTS, mount_point=self._mount)
            except vault.InvalidPath:
                return []
        return [str(key) for key in answer["data"]["keys"]]

    def _write(self, path: str, fields: dict[str, Any], *, cas: int) -> bool:
        with vault_call("write to the key store"):
            try:
                self._kv.create_or_update_secret(
                    path=path, secret=fields, cas=cas, mount_point=self._mount
                )
            except vault.InvalidRequest as refused:
                if "check-and-set" in str(refused):
                    return False
                raise KeyServiceUnavailableError("write to the key store: refused") from None
        return True

    @property
    def _kv(self) -> Any:
        return self._client.secrets.kv.v2


def _fields(record: WrappedKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "wrapped_key": record.wrapped_key,
        "key_version": record.key_version,
        "created_at": record.created_at.isoformat(),
    }


class TransitSigner:
    """An ed25519 Transit key that signs audit checkpoints (`Signer`)."""

    def __init__(self, client: hvac.Client, key_name: str, mount: str = "transit") -> None:
        self._client = client
        self._key_name = key_name
        self._mount = mount

    @property
    def key_name(self) -> str:
        return self._key_name

    def sign(self, message: bytes) -> tuple[bytes, int]:
        with vault_call("sign"):
            answer = self._client.secrets.transit.sign_data(
                name=self._key_name, hash_input=_b64(message), mount_point=self._mount
            )
        _vault, version, signature = str(answer["data"]["signature"]).split(":", 2)
        return base64.b64decode(signature), int(version.removeprefix("v"))

    def verify(self, message: bytes, signature: bytes, key_version: int) -> bool:
        with vault_call("verify a signature"):
            try:
                answer = self._client.secrets.transit.verify_signed_data(
                    name=self._key_name,
                    hash_input=_b64(message),
                    signature=f"vault:v{key_version}:{_b64(signature)}",
                    mount_point=self._mount,
                )
            except vault.InvalidRequest:
                return False  # a malformed signature or a key version that never existed
        return bool(answer["data"]["valid"])


def ensure_key_store(client: hvac.Client, mount: str = "clinical-keys") -> None:
    """Mount and configure the KV v2 engine for wrapped data keys, unless it already is.

    One version per record (a rewrap leaves no older copy behind) and check-and-set required
    on every write. infra/local/localinfra/openbao.py does the same over plain HTTP.
    """
    with vault_call("mount the key store"):
        if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        for _attempt in range(50):
            try:
                client.secrets.kv.v2.configure(max_versions=1, cas_required=True, mount_point=mount)
                return
            except (vault.InvalidRequest, vault.InvalidPath, vault.InternalServerError):
                # A new KV v2 mount needs a moment to finish setting up.
                time.sleep(0.1)
        client.secrets.kv.v2.configure(max_versions=1, cas_required=True, mount_point=mount)
