"""Client factories: configured as the platform requires, and nothing connects on build."""

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.clients.vault import build_vault_client
from clinical_platform.settings import BaseServiceSettings, Port, SettingsError

pytestmark = pytest.mark.unit


# Placeholder credentials for a server that is never called.
SAMPLE_TOKEN = "s.sample"  # noqa: S105


class SampleSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")

    grpc_port: Port = 50099


def test_vault_token_auth_uses_the_configured_token() -> None:
    settings = SampleSettings.model_validate(
        {"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": SAMPLE_TOKEN}
    )

    client = build_vault_client(settings)

    assert client.token == SAMPLE_TOKEN


def test_vault_token_auth_without_a_token_names_the_missing_variable() -> None:
    settings = SampleSettings.model_validate({"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": ""})

    with pytest.raises(SettingsError, match=r"^VAULT_TOKEN: required when VAULT_AUTH_METHOD=token"):
        build_vault_client(settings)


def test_vault_approle_auth_without_a_role_id_names_the_missing_variable() -> None:
    settings = SampleSettings.model_validate(
        {"VAULT_AUTH_METHOD": "approle", "VAULT_SECRET_ID": SAMPLE_TOKEN}
    )

    with pytest.raises(SettingsError, match=r"^VAULT_ROLE_ID: required"):
        build_vault_client(settings)


def test_vault_kubernetes_auth_with_an_unreadable_token_names_the_path_variable(
    tmp_path: Path,
) -> None:
    settings = SampleSettings.model_validate(
        {
            "VAULT_AUTH_METHOD": "kubernetes",
            "VAULT_K8S_ROLE": "orders",
            "VAULT_K8S_JWT_PATH": tmp_path,
        }
    )

    with pytest.raises(SettingsError, match=r"^VAULT_K8S_JWT_PATH: cannot read token"):
        build_vault_client(settings)


async def test_mongo_client_reads_timestamps_back_as_aware_datetimes_without_connecting() -> None:
    # Port 9 (discard) on loopback: nothing answers, and building must not care.
    settings = SampleSettings.model_validate({"MONGODB_URL": "mongodb://127.0.0.1:9/"})

    client = build_mongo_client(settings)
    try:
        assert client.codec_options.tz_aware is True
    finally:
        await client.close()


def test_kafka_defaults_to_sasl_ssl_and_names_missing_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Settings read the environment too, where a test session may have exported a principal.
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = SampleSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})

    with pytest.raises(SettingsError) as refused:
        KafkaConnection.from_settings(settings)

    assert str(refused.value) == (
        "KAFKA_SASL_USERNAME: required when KAFKA_SECURITY_PROTOCOL=SASL_SSL; "
        "KAFKA_SASL_PASSWORD: required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    )


def test_kafka_sasl_ssl_options_carry_credentials_and_the_ca(tmp_path: Path) -> None:
    settings = SampleSettings.model_validate(
        {"KAFKA_SASL_USERNAME": "orders", "KAFKA_SASL_PASSWORD": SAMPLE_TOKEN}
    )

    options = KafkaConnection.from_settings(settings).client_options()

    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "orders",
        SAMPLE_TOKEN,
    )
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"


def test_an_unreadable_kafka_ca_file_names_its_variable(tmp_path: Path) -> None:
    security = KafkaSecurity(
        username="orders", password=SecretStr(SAMPLE_TOKEN), ca_file=tmp_path / "missing.pem"
    )

    with pytest.raises(SettingsError, match=r"^KAFKA_SSL_CAFILE: cannot load"):
        security.client_options()
