"""Settings: shared connections unprefixed, service endpoint prefixed, failures name variables."""

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import (
    BaseServiceSettings,
    Port,
    SettingsError,
    load_settings,
    load_settings_or_exit,
)

pytestmark = pytest.mark.unit


class SampleSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")

    grpc_port: Port = 50099


class PortlessSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTLESS_")


def test_malformed_port_is_reported_under_its_prefixed_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(SampleSettings, grpc_port="not-a-port")

    assert str(raised.value).startswith("SAMPLE_GRPC_PORT: Input should be a valid integer")


def test_every_bad_variable_is_named_on_one_line() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(SampleSettings, grpc_port=70000, LOG_LEVEL="loud")

    message = str(raised.value)
    assert "\n" not in message
    assert "SAMPLE_GRPC_PORT: Input should be less than or equal to 65535" in message
    assert "LOG_LEVEL: Input should be 'DEBUG'" in message


def test_shared_connections_are_read_unprefixed_and_service_settings_prefixed(
    tmp_path: Path,
) -> None:
    # A dotenv file is named like the environment but leaves it untouched. Real environment
    # variables would win, so use ones a developer's shell does not export.
    dotenv = tmp_path / ".env"
    dotenv.write_text("VAULT_K8S_ROLE=orders\nVAULT_SECRET_ID=s.sample\nSAMPLE_GRPC_PORT=6000\n")

    settings = load_settings(SampleSettings, _env_file=dotenv)

    assert settings.vault_k8s_role == "orders"
    assert settings.vault_secret_id is not None
    assert settings.vault_secret_id.get_secret_value() == "s.sample"
    assert settings.grpc_port == 6000


def test_defaults_bind_loopback_with_reflection_off() -> None:
    settings = SampleSettings()

    assert settings.grpc_host == "127.0.0.1"
    assert settings.grpc_port == 50099
    assert settings.grpc_reflection is False
    assert settings.grpc_grace_seconds == 10.0


def test_entrypoint_prints_one_line_naming_the_missing_variable_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit(PortlessSettings)

    assert exited.value.code == 2
    assert capsys.readouterr().err == "invalid settings: PORTLESS_GRPC_PORT: Field required\n"
