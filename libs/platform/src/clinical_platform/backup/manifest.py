"""The manifest of a backup: what was copied, where each partition ended, and each file's hash.

A restore trusts nothing in the folder that the manifest does not vouch for: every file is
hashed again and compared before anything is written to the target, so a truncated copy or an
edited record stops the restore before its first write instead of half-way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "clinical-backup/1"
MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 20


class ManifestError(Exception):
    """The folder is no backup this code can restore, or a file differs from its manifest."""


@dataclass(frozen=True)
class PartitionCopy:
    """One partition as copied: records in ``[start_offset, end_offset)`` (read_committed)."""

    partition: int
    start_offset: int
    end_offset: int
    records: int
    file: str
    sha256: str


@dataclass(frozen=True)
class TopicCopy:
    """A topic as copied. ``offsets_preserved``: the restore must land every record at the
    offset it had (false only where records of other topics were left out, e.g. checkpoints
    of topics not in the backup)."""

    name: str
    partitions: tuple[PartitionCopy, ...]
    offsets_preserved: bool = True

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)


@dataclass(frozen=True)
class KeyStoreCopy:
    """The KV v2 entries of the key store mount (wrapped keys and tombstones, never plaintext)."""

    mount: str
    file: str
    sha256: str
    patients: int
    forgotten: int


@dataclass(frozen=True)
class Manifest:
    created_at: str
    topics: tuple[TopicCopy, ...]
    key_store: KeyStoreCopy | None = None
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(t.records for t in self.topics)

    def files(self) -> dict[str, str]:
        """Every file the backup holds, relative to its folder -> its SHA-256 (hex)."""
        hashes = {p.file: p.sha256 for t in self.topics for p in t.partitions}
        if self.key_store is not None:
            hashes[self.key_store.file] = self.key_store.sha256
        return hashes


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as opened:
        while chunk := opened.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Written last, through a temporary file: a folder with a manifest is a finished backup."""
    path = folder / MANIFEST_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest; `ManifestError` when missing, of another format or malformed."""
    path = folder / MANIFEST_FILE
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(
            f"no {MANIFEST_FILE} in the backup folder: an unfinished backup?"
        ) from None
    except (OSError, ValueError) as unreadable:
        raise ManifestError(
            f"{MANIFEST_FILE} is unreadable ({type(unreadable).__name__})"
        ) from None
    try:
        return _decoded(fields)
    except (KeyError, TypeError, ValueError) as malformed:
        raise ManifestError(f"{MANIFEST_FILE} is malformed ({type(malformed).__name__})") from None


def check_files(folder: Path, manifest: Manifest) -> None:
    """Raise `ManifestError` naming the first file that is missing, outside the folder or whose
    SHA-256 differs from the manifest's."""
    root = folder.resolve()
    for name, expected in sorted(manifest.files().items()):
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise ManifestError(f"the manifest names a file outside the backup folder: {name}")
        if not path.is_file():
            raise ManifestError(f"{name} is missing from the backup folder")
        if file_sha256(path) != expected:
            raise ManifestError(f"{name} does not match its SHA-256 in the manifest")


def _decoded(fields: dict[str, Any]) -> Manifest:
    if fields.get("format") != FORMAT:
        raise ValueError(f"format {fields.get('format')!r} is not {FORMAT}")
    topics = tuple(
        TopicCopy(
            name=str(topic["name"]),
            partitions=tuple(PartitionCopy(**p) for p in topic["partitions"]),
            offsets_preserved=bool(topic["offsets_preserved"]),
        )
        for topic in fields["topics"]
    )
    store = fields.get("key_store")
    return Manifest(
        created_at=str(fields["created_at"]),
        topics=topics,
        key_store=KeyStoreCopy(**store) if store else None,
        extra=dict(fields.get("extra") or {}),
    )
