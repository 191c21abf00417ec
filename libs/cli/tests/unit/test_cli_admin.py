"""The operator commands' refusals before any server is asked, and their own exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_cli.commands.admin import FindingError
from clinical_cli.errors import ExitCode

from .fakes import FakePlatform, invoke

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def config_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path / "cli"))


def test_verify_refuses_a_topic_that_is_no_event_topic_before_connecting() -> None:
    result = invoke(FakePlatform(), ["admin", "verify", "--topic", "__consumer_offsets"])

    assert result.exit_code == ExitCode.INVALID_ARGUMENT
    assert result.stderr == (
        "error: INVALID_ARGUMENT: not an event topic (AUDIT_EVENT_TOPIC_PATTERN): "
        "__consumer_offsets\n"
    )


def test_replaying_an_unknown_read_model_is_a_usage_error() -> None:
    result = invoke(FakePlatform(), ["admin", "replay-dead-letters", "billing"])

    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: USAGE: no read model 'billing': choose from patient,")


def test_rewrap_without_vault_credentials_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_AUTH_METHOD", "approle")
    monkeypatch.delenv("VAULT_ROLE_ID", raising=False)

    result = invoke(FakePlatform(), ["admin", "rewrap"])

    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == (
        "error: USAGE: invalid settings: VAULT_ROLE_ID: required when VAULT_AUTH_METHOD=approle\n"
    )


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        ("DATA_LOSS", ExitCode.LOG_VERIFICATION_FAILED, 9),
        ("STILL_FAILING", ExitCode.DEAD_LETTERS_STILL_FAILING, 10),
    ],
)
def test_a_finding_exits_with_its_own_code(status: str, code: ExitCode, exit_code: int) -> None:
    finding = FindingError(status, "partition 0:\\nfirst bad offset 3", code)

    assert int(finding.exit_code) == exit_code
    assert finding.line() == f"error: {status}: partition 0:\\nfirst bad offset 3"
