"""Production mode: each insecure setting is refused with its own line; a secure one starts."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic_settings import SettingsConfigDict

from clinical_platform.production import (
    DEV_KEY_FILES,
    VaultTokenUncheckedError,
    production_refusals,
    refuse_insecure_settings_or_exit,
)
from clinical_platform.settings import BaseServiceSettings, Port, SettingsError, load_settings

pytestmark = pytest.mark.unit


class ProbeSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")

    grpc_port: Port = 50098


def _pem() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


SERVICE_KEY, DEV_KEY = _pem(), _pem()


def _service_policies(_: BaseServiceSettings) -> Sequence[str]:
    return ["default", "orders"]


def secure(**changes: Any) -> ProbeSettings:
    """A production configuration with nothing to refuse, but for ``changes``."""
    values: dict[str, Any] = {
        "ENVIRONMENT": "production", "grpc_host": "0.0.0.0",  # noqa: S104 - a pod's address
        "grpc_tls_cert_file": Path("/tls/tls.crt"), "grpc_tls_key_file": Path("/tls/tls.key"),
        "grpc_tls_ca_file": Path("/tls/ca.crt"), "grpc_reflection": False,
        "VAULT_ADDR": "https://vault.clinical.svc:8200", "VAULT_AUTH_METHOD": "token",
        "VAULT_TOKEN": "hvs.service-token", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "JWT_PUBLIC_KEYS": SERVICE_KEY, "JWT_MAX_LIFETIME_SECONDS": 900,
    }  # fmt: skip
    return load_settings(ProbeSettings, **(values | changes))


_MONGODB_IN_THE_CLEAR = (
    "MONGODB_URL: no TLS (tls=true) to a non-loopback host; read models would cross the "
    "network in the clear"
)


def refusals(settings: BaseServiceSettings, dev_key: Path) -> list[str]:
    return production_refusals(settings, vault_policies=_service_policies, dev_key_files=[dev_key])


@pytest.fixture
def dev_key(tmp_path: Path) -> Path:
    path = tmp_path / "public.pem"
    path.write_text(DEV_KEY)
    return path


def test_a_secure_configuration_is_accepted(dev_key: Path) -> None:
    assert refusals(secure(), dev_key) == []


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        (
            {"grpc_tls_cert_file": None, "grpc_tls_key_file": None, "grpc_tls_ca_file": None},
            "PROBE_GRPC_TLS_CERT_FILE, PROBE_GRPC_TLS_KEY_FILE, PROBE_GRPC_TLS_CA_FILE: unset; "
            "gRPC must be mutual TLS, plaintext is refused",
        ),
        (
            {"grpc_tls_ca_file": None},
            "PROBE_GRPC_TLS_CA_FILE: unset; gRPC must be mutual TLS, plaintext is refused",
        ),
        (
            {"grpc_reflection": True},
            "PROBE_GRPC_REFLECTION: reflection on a non-loopback host hands the API's map to "
            "any caller",
        ),
        (
            {"JWT_PUBLIC_KEYS": SERVICE_KEY + DEV_KEY},
            "JWT_PUBLIC_KEYS: trusts the development signing key ({dev_key})",
        ),
        (
            {"JWT_JWKS_URL": "http://gateway.clinical.svc:18080/.well-known/jwks.json"},
            "JWT_JWKS_URL: not https; whoever sits on the path could hand us signing keys",
        ),
        (
            {"JWT_MAX_LIFETIME_SECONDS": 3600},
            "JWT_MAX_LIFETIME_SECONDS: above 900 s; stolen tokens live on",
        ),
        (
            {"VAULT_ADDR": "http://vault.clinical.svc:8200"},
            "VAULT_ADDR: not https; tokens and data keys would cross the network in the clear",
        ),
        (
            {"VAULT_TOKEN": "root-token-of-the-dev-server"},
            "VAULT_TOKEN: a root token; give the service a token of its own policy",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
            "KAFKA_SECURITY_PROTOCOL: PLAINTEXT; production speaks SASL_SSL only",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL"},
            "KAFKA_SECURITY_PROTOCOL: SSL; production speaks SASL_SSL only",
        ),
        (
            {"MONGODB_URL": "mongodb://orders:s3cret@mongo.clinical.svc:27017/orders"},
            _MONGODB_IN_THE_CLEAR,
        ),
        (
            {"MONGODB_URL": "mongodb://127.0.0.1:27017,mongo-1.clinical.svc:27017/?tls=false"},
            _MONGODB_IN_THE_CLEAR,
        ),
        (
            {"MONGODB_URL": "mongodb+srv://mongo.clinical.svc/?tls=false"},
            _MONGODB_IN_THE_CLEAR,
        ),
        (
            {"MONGODB_URL": "mongodb://mongo.clinical.svc/?tls=true&tlsInsecure=true"},
            "MONGODB_URL: tlsInsecure; anyone on the path could pose as the database",
        ),
        (
            {"MONGODB_URL": "mongodb+srv://mongo.clinical.svc/?TLSAllowInvalidCertificates=TRUE"},
            "MONGODB_URL: tlsAllowInvalidCertificates; anyone on the path could pose as the "
            "database",
        ),
    ],
)
def test_each_insecure_setting_is_refused_with_one_line(
    changes: dict[str, Any], refusal: str, dev_key: Path
) -> None:
    def policies(settings: BaseServiceSettings) -> Sequence[str]:
        token = settings.vault_token.get_secret_value() if settings.vault_token else ""
        return ["root"] if token.startswith("root") else ["default", "orders"]

    found = production_refusals(secure(**changes), vault_policies=policies,
                                dev_key_files=[dev_key])  # fmt: skip

    assert found == [refusal.format(dev_key=dev_key)]


def test_a_key_set_over_https_or_on_loopback_is_accepted(dev_key: Path) -> None:
    for url in ("https://gateway.clinical.svc/.well-known/jwks.json",
                "http://127.0.0.1:18080/.well-known/jwks.json"):  # fmt: skip
        assert refusals(secure(JWT_JWKS_URL=url), dev_key) == []


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://orders:s3cret@mongo.clinical.svc:27017/orders?tls=true",
        "mongodb://mongo-0.clinical.svc,mongo-1.clinical.svc/?replicaSet=rs0&ssl=true",
        "mongodb+srv://orders:s3cret@mongo.clinical.svc/orders",
        "mongodb://127.0.0.1:37017/",
        "mongodb://[::1]:27017,localhost:27018/?directConnection=true",
    ],
)
def test_mongodb_over_tls_or_on_loopback_is_accepted(url: str, dev_key: Path) -> None:
    assert refusals(secure(MONGODB_URL=url), dev_key) == []


def test_a_refused_mongodb_url_never_shows_its_password(dev_key: Path) -> None:
    insecure = secure(
        MONGODB_URL="mongodb://orders:s3cret-7Qx9vLk2@mongo.clinical.svc/?tlsInsecure=true"
    )

    assert not [line for line in refusals(insecure, dev_key) if "s3cret" in line]


def test_reflection_on_loopback_is_allowed(dev_key: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert refusals(secure(grpc_reflection=True, grpc_host=host), dev_key) == []


def test_a_vault_token_that_cannot_be_checked_is_refused(dev_key: Path) -> None:
    def unreachable(_: BaseServiceSettings) -> Sequence[str]:
        raise VaultTokenUncheckedError("Vault did not answer (ConnectionError)")

    found = production_refusals(secure(), vault_policies=unreachable, dev_key_files=[dev_key])

    assert found == [
        "VAULT_TOKEN: could not be checked for root (Vault did not answer (ConnectionError)); "
        "refusing to guess"
    ]


def test_logins_by_role_are_not_looked_up(dev_key: Path) -> None:
    def never(_: BaseServiceSettings) -> Sequence[str]:
        raise AssertionError("an AppRole login's token comes from its role")

    approle = secure(VAULT_AUTH_METHOD="approle", VAULT_ROLE_ID="orders", VAULT_TOKEN=None)

    assert production_refusals(approle, vault_policies=never, dev_key_files=[dev_key]) == []


def test_a_service_adds_its_own_refusals(dev_key: Path) -> None:
    class HookedSettings(ProbeSettings):
        def production_refusals(self) -> list[str]:
            return ["PROBE_OWN: refused by the service"]

    settings = load_settings(HookedSettings, **secure().model_dump(by_alias=True))

    assert refusals(settings, dev_key) == ["PROBE_OWN: refused by the service"]


def test_every_refusal_is_printed_on_its_own_line_and_the_exit_status_is_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    insecure = secure(KAFKA_SECURITY_PROTOCOL="PLAINTEXT", VAULT_ADDR="http://vault:8200")

    with pytest.raises(SystemExit) as exited:
        refuse_insecure_settings_or_exit(insecure, vault_policies=_service_policies)

    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "production mode: VAULT_ADDR: not https; tokens and data keys would cross the network "
        "in the clear\n"
        "production mode: KAFKA_SECURITY_PROTOCOL: PLAINTEXT; production speaks SASL_SSL only\n"
    )


@pytest.mark.parametrize("environment", ["development", "staging"])
def test_other_environments_check_nothing(environment: str) -> None:
    def never(_: BaseServiceSettings) -> Sequence[str]:
        raise AssertionError("only production mode calls Vault")

    plain = load_settings(ProbeSettings, ENVIRONMENT=environment, VAULT_ADDR="http://x")

    refuse_insecure_settings_or_exit(plain, vault_policies=never)


def test_tls_files_come_as_a_pair() -> None:
    with pytest.raises(SettingsError, match="PROBE_GRPC_TLS_CERT_FILE and PROBE_GRPC_TLS_KEY_FILE"):
        load_settings(ProbeSettings, grpc_tls_cert_file=Path("/tls/tls.crt"))
    with pytest.raises(SettingsError, match="a CA alone serves no TLS"):
        load_settings(ProbeSettings, grpc_tls_ca_file=Path("/tls/ca.crt"))


def test_the_dev_key_is_looked_for_in_the_checkout_and_the_working_directory(
    pytestconfig: pytest.Config,
) -> None:
    assert pytestconfig.rootpath / ".infra/dev-jwt/public.pem" in DEV_KEY_FILES
    assert Path(".infra/dev-jwt/public.pem") in DEV_KEY_FILES
