"""The backup manifest: written last, read back equal, and every file checked against its
SHA-256 before a restore writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_platform.backup.manifest import (
    MANIFEST_FILE,
    KeyStoreCopy,
    Manifest,
    ManifestError,
    PartitionCopy,
    TopicCopy,
    check_files,
    file_sha256,
    read_manifest,
    write_manifest,
)
from clinical_platform.backup.records import CopiedRecord, decode, encode

pytestmark = pytest.mark.unit


def backup_folder(folder: Path) -> Manifest:
    records = [
        CopiedRecord(0, 1_700_000_000_000, b"order-1", b"\x0a\x00sealed", (("ce_type", b"x"),)),
        CopiedRecord(2, 1_700_000_000_001, None, None),
    ]
    path = folder / "topics/clinical.orders.events.v1/0.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(encode(record) + "\n" for record in records))
    (folder / "vault").mkdir()
    (folder / "vault/key-store.json").write_text('{"patients": {}, "forgotten": {}}\n')
    partition = PartitionCopy(
        partition=0, start_offset=0, end_offset=4, records=2,
        file="topics/clinical.orders.events.v1/0.jsonl",
        sha256=file_sha256(folder / "topics/clinical.orders.events.v1/0.jsonl"),
    )  # fmt: skip
    store = KeyStoreCopy("clinical-keys", "vault/key-store.json",
                         file_sha256(folder / "vault/key-store.json"), 0, 0)  # fmt: skip
    manifest = Manifest("2026-12-07T00:00:00+00:00",
                        (TopicCopy("clinical.orders.events.v1", (partition,)),), store)  # fmt: skip
    write_manifest(folder, manifest)
    return manifest


def test_a_manifest_reads_back_equal_and_its_files_check(tmp_path: Path) -> None:
    written = backup_folder(tmp_path)

    read = read_manifest(tmp_path)

    assert read == written
    assert read.records == 2
    check_files(tmp_path, read)


def test_a_changed_byte_in_a_record_file_is_named(tmp_path: Path) -> None:
    manifest = backup_folder(tmp_path)
    path = tmp_path / "topics/clinical.orders.events.v1/0.jsonl"
    path.write_text(path.read_text().replace("sealed"[:1], "S", 1))

    with pytest.raises(ManifestError, match=r"0\.jsonl does not match its SHA-256"):
        check_files(tmp_path, manifest)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    manifest = backup_folder(tmp_path)
    (tmp_path / "vault/key-store.json").unlink()

    with pytest.raises(ManifestError, match=r"key-store\.json is missing"):
        check_files(tmp_path, manifest)


def test_a_manifest_naming_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    manifest = backup_folder(tmp_path)
    outside = PartitionCopy(1, 0, 0, 0, "../elsewhere.jsonl", "0" * 64)
    topic = TopicCopy("clinical.orders.events.v1", (*manifest.topics[0].partitions, outside))

    with pytest.raises(ManifestError, match="outside the backup folder"):
        check_files(tmp_path, Manifest(manifest.created_at, (topic,)))


def test_a_folder_without_a_manifest_is_an_unfinished_backup(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="unfinished backup"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("text", ["{", '{"format": "other/9", "topics": []}', '{"format": '
                                  '"clinical-backup/1", "topics": [{"name": "t"}]}'])  # fmt: skip
def test_a_malformed_manifest_is_refused_without_quoting_it(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST_FILE).write_text(text)

    with pytest.raises(ManifestError) as refused:
        read_manifest(tmp_path)

    assert "other/9" not in str(refused.value)


def test_a_record_keeps_its_bytes_headers_and_timestamp_through_a_line() -> None:
    record = CopiedRecord(7, 1_700_000_000_123, b"\x00\xff", b"\x01\x02", (("h", b"\x00"),))

    assert decode(encode(record)) == record
