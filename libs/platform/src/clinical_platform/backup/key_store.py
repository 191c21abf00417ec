"""The key store's KV v2 entries, copied as they are: wrapped data keys and tombstones.

A wrapped key is ciphertext under the Transit KEK, which never leaves Vault: the copy is no
more sensitive than the log it decrypts, and the KEK itself comes back only with Vault's own
storage (a Raft snapshot, docs/deploy.md#backups). A patient forgotten before the backup has a
tombstone and no key in it, so restoring cannot bring their data back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
from hvac import exceptions as vault

from clinical_platform.security.vault_adapters import ensure_key_store, vault_call

FOLDERS = ("patients", "forgotten")
_NEW_MOUNT_ATTEMPTS = 50


class KeyStoreConflictError(Exception):
    """An entry to restore exists already: someone wrote to the key store meanwhile."""


@dataclass(frozen=True)
class KeyStoreEntries:
    """folder ("patients" or "forgotten") -> entry name -> its KV fields."""

    entries: dict[str, dict[str, dict[str, Any]]]

    def count(self, folder: str) -> int:
        return len(self.entries.get(folder, {}))


def export_key_store(client: hvac.Client, mount: str) -> KeyStoreEntries:
    """Every entry under the mount's folders (an absent mount or folder: none)."""
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    with vault_call("read the key store"):
        for folder in FOLDERS:
            entries[folder] = {
                name: fields
                for name in _names(client, mount, folder)
                if (fields := _read(client, mount, f"{folder}/{name}")) is not None
            }
    return KeyStoreEntries(entries)


def key_store_is_empty(client: hvac.Client, mount: str) -> bool:
    with vault_call("read the key store"):
        return not any(_names(client, mount, folder) for folder in FOLDERS)


def import_key_store(client: hvac.Client, mount: str, copied: KeyStoreEntries) -> int:
    """Create each entry (check-and-set 0: an entry that exists is never overwritten); the
    number written. The mount is created, configured like the platform's, when missing."""
    ensure_key_store(client, mount)
    written = 0
    with vault_call("write the key store"):
        for folder, entries in copied.entries.items():
            for name, fields in entries.items():
                _create(client, mount, f"{folder}/{name}", fields)
                written += 1
    return written


def _create(client: hvac.Client, mount: str, path: str, fields: dict[str, Any]) -> None:
    for _attempt in range(_NEW_MOUNT_ATTEMPTS):
        try:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=fields, cas=0, mount_point=mount
            )
            return
        except vault.InvalidRequest:
            # A mount created a moment ago refuses writes while KV v2 finishes setting it up;
            # an entry that exists (check-and-set 0) is refused for good and raised below.
            time.sleep(0.1)
    try:
        client.secrets.kv.v2.create_or_update_secret(
            path=path, secret=fields, cas=0, mount_point=mount
        )
    except vault.InvalidRequest:
        # The path only: it holds a patient id.
        raise KeyStoreConflictError("a key store entry appeared during the restore") from None


def save_entries(path: Path, copied: KeyStoreEntries) -> None:
    path.write_text(json.dumps(copied.entries, indent=1, sort_keys=True) + "\n")


def load_entries(path: Path) -> KeyStoreEntries:
    entries = json.loads(path.read_text())
    if not isinstance(entries, dict) or set(entries) - set(FOLDERS):
        raise ValueError("the key store copy has unexpected folders")
    return KeyStoreEntries(entries)


def _names(client: hvac.Client, mount: str, folder: str) -> list[str]:
    try:
        answer = client.secrets.kv.v2.list_secrets(path=folder, mount_point=mount)
    except vault.InvalidPath:
        return []  # nothing was ever written there (or no such mount)
    return sorted(str(name) for name in answer["data"]["keys"] if not str(name).endswith("/"))


def _read(client: hvac.Client, mount: str, path: str) -> dict[str, Any] | None:
    try:
        answer = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )
    except vault.InvalidPath:
        return None  # destroyed between the listing and the read (a forget)
    return dict(answer["data"]["data"])
