"""Webhook signing secrets: kept on the log only as Transit ciphertext.

Delivery needs the clear secret for every POST, so decrypted secrets stay in a small in-memory
cache keyed by their ciphertext (a rotated secret has a new ciphertext, so nothing goes stale).
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict

import hvac
from hvac import exceptions as vault

from clinical_platform.security.vault_adapters import vault_call

_CACHE_SIZE = 10_000


class TransitSecretBox:
    """Encrypts and decrypts webhook secrets with one Transit key (created when missing)."""

    def __init__(self, client: hvac.Client, key_name: str, mount: str = "transit") -> None:
        self._client = client
        self._key_name = key_name
        self._mount = mount
        self._clear: OrderedDict[str, str] = OrderedDict()

    async def ensure_key(self) -> None:
        await asyncio.to_thread(self._ensure_key)

    async def seal(self, secret: str) -> str:
        ciphertext = await asyncio.to_thread(self._encrypt, secret)
        self._remember(ciphertext, secret)
        return ciphertext

    async def open(self, ciphertext: str) -> str:
        if (secret := self._clear.get(ciphertext)) is not None:
            self._clear.move_to_end(ciphertext)
            return secret
        secret = await asyncio.to_thread(self._decrypt, ciphertext)
        self._remember(ciphertext, secret)
        return secret

    def _remember(self, ciphertext: str, secret: str) -> None:
        self._clear[ciphertext] = secret
        if len(self._clear) > _CACHE_SIZE:
            self._clear.popitem(last=False)

    def _ensure_key(self) -> None:
        with vault_call("read the webhook secret key"):
            try:
                self._client.secrets.transit.read_key(name=self._key_name, mount_point=self._mount)
                return
            except vault.InvalidPath:
                pass
        with vault_call("create the webhook secret key"):
            self._client.secrets.transit.create_key(
                name=self._key_name, key_type="aes256-gcm96", mount_point=self._mount
            )

    def _encrypt(self, secret: str) -> str:
        with vault_call("encrypt a webhook secret"):
            answer = self._client.secrets.transit.encrypt_data(
                name=self._key_name, mount_point=self._mount,
                plaintext=base64.b64encode(secret.encode()).decode(),
            )  # fmt: skip
        return str(answer["data"]["ciphertext"])

    def _decrypt(self, ciphertext: str) -> str:
        with vault_call("decrypt a webhook secret"):
            answer = self._client.secrets.transit.decrypt_data(
                name=self._key_name, ciphertext=ciphertext, mount_point=self._mount
            )
        return base64.b64decode(answer["data"]["plaintext"]).decode()
