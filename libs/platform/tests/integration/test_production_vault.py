"""Production mode asks the real Vault (OpenBao) which policies a token holds: root is refused."""

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from pydantic_settings import SettingsConfigDict

from clinical_platform.production import (
    VaultTokenUncheckedError,
    production_refusals,
    vault_token_policies,
)
from clinical_platform.settings import BaseServiceSettings, Port, load_settings

pytestmark = pytest.mark.integration

ROOT_REFUSAL = "VAULT_TOKEN: a root token; give the service a token of its own policy"


class ProbeSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")

    grpc_port: Port = 50097


def _with_token(servers: ServerEndpoints, token: str) -> ProbeSettings:
    return load_settings(ProbeSettings, VAULT_ADDR=servers.vault_addr, VAULT_TOKEN=token,
                         VAULT_AUTH_METHOD="token")  # fmt: skip


def test_the_root_token_is_refused_and_a_policy_token_is_not(
    servers: ServerEndpoints, vault: hvac.Client
) -> None:
    created = vault.auth.token.create(policies=["default"], ttl="2m", no_parent=True)
    service_token = created["auth"]["client_token"]

    root = _with_token(servers, servers.vault_token)
    service = _with_token(servers, service_token)

    assert "root" in vault_token_policies(root)
    assert ROOT_REFUSAL in production_refusals(root)
    assert "root" not in vault_token_policies(service)
    assert ROOT_REFUSAL not in production_refusals(service)


def test_a_token_vault_does_not_know_cannot_be_checked(servers: ServerEndpoints) -> None:
    unknown = _with_token(servers, "hvs.not-a-token-of-this-vault")

    with pytest.raises(VaultTokenUncheckedError, match="Vault refused the token"):
        vault_token_policies(unknown)
