"""clinical admin backup|restore refusals that need no server: missing settings (exit 2), a
backup folder that is not empty, a backup without a manifest or with a changed file (exit 7),
each one line on stderr, before any connection is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clinical_testing.service_process import free_tcp_port
from typer.testing import CliRunner

from clinical_cli.app import app
from clinical_cli.errors import ExitCode
from clinical_platform.backup.manifest import Manifest, PartitionCopy, TopicCopy, file_sha256
from clinical_platform.backup.manifest import write_manifest as save_manifest

pytestmark = pytest.mark.unit


@pytest.fixture
def operator_env(tmp_path: Path) -> dict[str, str]:
    """Plaintext Kafka and a Vault on ports nothing listens on: reaching them would fail."""
    return {
        "CLINICAL_CONFIG_DIR": str(tmp_path / "cli"), "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_tcp_port()}",
        "VAULT_ADDR": f"http://127.0.0.1:{free_tcp_port()}", "VAULT_TOKEN": "root-token-value",
    }  # fmt: skip


def one_topic_backup(folder: Path) -> Path:
    record = folder / "topics/clinical.orders.events.v1/0.jsonl"
    record.parent.mkdir(parents=True)
    line: dict[str, object] = {"offset": 0, "timestamp": 1, "key": None, "value": "AA==",
                               "headers": []}  # fmt: skip
    record.write_text(json.dumps(line) + "\n")
    copy = PartitionCopy(0, 0, 2, 1, "topics/clinical.orders.events.v1/0.jsonl",
                         file_sha256(record))  # fmt: skip
    save_manifest(folder, Manifest("2026-12-07T00:00:00+00:00",
                                   (TopicCopy("clinical.orders.events.v1", (copy,)),)))  # fmt: skip
    return record


def test_missing_settings_exit_2_naming_each_variable(tmp_path: Path) -> None:
    env = {"CLINICAL_CONFIG_DIR": str(tmp_path / "cli"), "KAFKA_BOOTSTRAP_SERVERS": "",
           "VAULT_ADDR": "", "VAULT_TOKEN": ""}  # fmt: skip

    result = CliRunner(env=env).invoke(app, ["admin", "backup", str(tmp_path / "b")])

    assert result.exit_code == ExitCode.USAGE, result.output
    assert "KAFKA_BOOTSTRAP_SERVERS: required" in result.stderr
    assert "VAULT_TOKEN: required" in result.stderr


def test_a_backup_into_a_folder_that_is_not_empty_is_refused(
    tmp_path: Path, operator_env: dict[str, str]
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "old.txt").write_text("x")

    result = CliRunner(env=operator_env).invoke(app, ["admin", "backup", str(tmp_path / "b")])

    assert result.exit_code == ExitCode.CONFLICT, result.output
    assert result.stderr.strip().startswith("error: FAILED_PRECONDITION: the backup folder is not")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_restore_of_a_changed_backup_is_refused_before_any_connection(
    tmp_path: Path, operator_env: dict[str, str]
) -> None:
    record = one_topic_backup(tmp_path / "b")
    record.write_text(record.read_text().replace('"offset": 0', '"offset": 1'))

    result = CliRunner(env=operator_env).invoke(app, ["admin", "restore", str(tmp_path / "b")])

    assert result.exit_code == ExitCode.CONFLICT, result.output
    assert "0.jsonl does not match its SHA-256 in the manifest" in result.stderr
    assert "root-token-value" not in result.output


def test_a_restore_of_an_unfinished_backup_is_refused(
    tmp_path: Path, operator_env: dict[str, str]
) -> None:
    (tmp_path / "b").mkdir()

    result = CliRunner(env=operator_env).invoke(app, ["admin", "restore", str(tmp_path / "b")])

    assert result.exit_code == ExitCode.CONFLICT, result.output
    assert "no manifest.json in the backup folder" in result.stderr


def test_a_restore_with_unreachable_servers_exits_8_without_quoting_them(
    tmp_path: Path, operator_env: dict[str, str]
) -> None:
    one_topic_backup(tmp_path / "b")

    result = CliRunner(env=operator_env).invoke(app, ["admin", "restore", str(tmp_path / "b")])

    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert operator_env["KAFKA_BOOTSTRAP_SERVERS"] not in result.stderr
