"""Exit codes scripts rely on, and the one error line: status code name, field violations and
never a value the command sent."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from clinical_testing.service_process import free_tcp_port
from typer.testing import CliRunner

from clinical_cli.app import app
from clinical_cli.errors import CommandError, ExitCode, FieldViolation

from .fakes import FakePlatform, invoke

pytestmark = pytest.mark.unit

TOKEN = ["--token", "t"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("UNAUTHENTICATED", ExitCode.AUTH),
        ("PERMISSION_DENIED", ExitCode.PERMISSION_DENIED),
        ("NOT_FOUND", ExitCode.NOT_FOUND),
        ("INVALID_ARGUMENT", ExitCode.INVALID_ARGUMENT),
        ("FAILED_PRECONDITION", ExitCode.CONFLICT),
        ("ABORTED", ExitCode.CONFLICT),
        ("UNAVAILABLE", ExitCode.UNAVAILABLE),
        ("DEADLINE_EXCEEDED", ExitCode.UNAVAILABLE),
        ("INTERNAL", ExitCode.FAILED),
    ],
)
def test_each_status_code_has_its_exit_code_and_is_named_in_one_line(
    status: str, code: ExitCode
) -> None:
    platform = FakePlatform(answers={"GetOrder": CommandError(status, "refused\nfor a reason")})

    result = invoke(platform, [*TOKEN, "order", "get", "order-1"])

    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr == f"error: {status}: refused for a reason\n"


def test_field_violations_follow_the_status_on_the_same_line() -> None:
    refused = CommandError("INVALID_ARGUMENT", "invalid request", [
        FieldViolation("demographics.birth_date", "must be a date (YYYY-MM-DD)"),
        FieldViolation("demographics.name.family", "is required"),
    ])  # fmt: skip
    platform = FakePlatform(answers={"RegisterPatient": refused})

    result = invoke(platform, [*TOKEN, "patient", "register", "--birth-date", "1990-13-45"])

    assert result.exit_code == ExitCode.INVALID_ARGUMENT
    assert result.stderr.splitlines() == [
        "error: INVALID_ARGUMENT: invalid request | demographics.birth_date: must be a date "
        "(YYYY-MM-DD); demographics.name.family: is required"
    ]


def test_an_error_line_never_repeats_a_value_the_command_sent() -> None:
    family, phone = f"Canary{secrets.token_hex(12)}", f"+44{secrets.randbelow(10**12):012d}"
    violation = FieldViolation("demographics.phone", f"{phone} is no phone")
    echoing = CommandError("INVALID_ARGUMENT", f"bad record {family} / {phone}", [violation])
    platform = FakePlatform(answers={"RegisterPatient": echoing})

    result = invoke(platform, [*TOKEN, "patient", "register", "--family", family,
                               "--phone", phone])  # fmt: skip

    assert result.exit_code == ExitCode.INVALID_ARGUMENT
    assert family not in result.output
    assert phone not in result.output
    assert "demographics.phone: <redacted> is no phone" in result.stderr


def test_a_bad_command_line_is_a_usage_error_before_any_call() -> None:
    platform = FakePlatform()

    missing = invoke(platform, [*TOKEN, "order", "place", "--test-code", "2823-3"])
    malformed = invoke(platform, [*TOKEN, "order", "place", "--patient-id", "p",
                                  "--test-code", "2823-3", "--reason", "N18.3"])  # fmt: skip

    assert missing.exit_code == malformed.exit_code == ExitCode.USAGE
    assert (
        malformed.stderr == "error: USAGE: --reason takes SYSTEM:CODE with SYSTEM icd10 or snomed\n"
    )
    assert platform.calls == []


def test_direct_calls_without_a_token_are_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLINICAL_TOKEN", raising=False)

    result = invoke(FakePlatform(), ["--direct", "patient", "get", "p-1"])

    assert result.exit_code == ExitCode.AUTH
    assert result.stderr.startswith("error: UNAUTHENTICATED: direct calls need a token")


def test_without_a_login_the_gateway_commands_say_how_to_log_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("CLINICAL_TOKEN", raising=False)

    result = invoke(FakePlatform(), ["order", "get", "o-1"])

    assert result.exit_code == ExitCode.AUTH
    assert (
        result.stderr
        == "error: UNAUTHENTICATED: not logged in to profile 'local': clinical login\n"
    )


def test_admin_rebuild_refuses_an_unknown_read_model_and_missing_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_MONGODB_DATABASE", "")
    monkeypatch.setenv("ORDERS_GRPC_PORT", "not-a-port")

    unknown = invoke(FakePlatform(), ["admin", "rebuild", "billing", "--yes"])
    misconfigured = invoke(FakePlatform(), ["admin", "rebuild", "orders", "--yes"])

    assert unknown.exit_code == misconfigured.exit_code == ExitCode.USAGE
    assert unknown.stderr == (
        "error: USAGE: no read model 'billing': choose from patient, orders, results\n"
    )
    assert misconfigured.stderr.startswith("error: USAGE: invalid settings: ORDERS_GRPC_PORT")
    assert "not-a-port" not in misconfigured.stderr


def test_the_exit_codes_scripts_rely_on_are_the_documented_ones() -> None:
    table = (Path(__file__).parents[4] / "docs" / "cli.md").read_text()
    section = table[table.index("## Exit codes") :]
    documented = [int(row.split("|")[1]) for row in section.splitlines()
                  if row.startswith("| ") and row.split("|")[1].strip().isdigit()]  # fmt: skip

    assert documented == [int(code) for code in ExitCode]


def test_a_service_that_does_not_answer_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path))
    closed = f"127.0.0.1:{free_tcp_port()}"
    runner = CliRunner()
    assert (
        runner.invoke(app, ["profile", "set", "local", "--set", f"orders={closed}"]).exit_code == 0
    )

    result = runner.invoke(app, ["--direct", "--token", "t", "order", "get", "o-1"])

    assert result.exit_code == ExitCode.UNAVAILABLE
    assert result.stderr.startswith("error: UNAVAILABLE: ")
    assert len(result.stderr.splitlines()) == 1
