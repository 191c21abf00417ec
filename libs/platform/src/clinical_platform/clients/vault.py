"""Vault client factory, authenticated by the method VAULT_AUTH_METHOD names.

hvac is synchronous and AppRole/Kubernetes login is a network call: call this at start-up, or
through ``asyncio.to_thread`` from async code.
"""

from typing import assert_never

import hvac
from pydantic import SecretStr

from clinical_platform.observability.vault import MeasuredVaultAdapter
from clinical_platform.settings import BaseServiceSettings, SettingsError


def build_vault_client(settings: BaseServiceSettings) -> hvac.Client:
    """Return a client for VAULT_ADDR holding a token from the configured auth method.

    Raises `SettingsError` naming the variable when the method's credentials are missing.
    """
    # A bounded timeout: a hung Vault must fail a PHI write (closed), not hold it forever.
    # MeasuredVaultAdapter: latency and errors per operation (docs/observability.md).
    client = hvac.Client(
        url=settings.vault_addr,
        timeout=settings.vault_timeout_seconds,
        adapter=MeasuredVaultAdapter,
    )
    log_in(client, settings)
    return client


def log_in(client: hvac.Client, settings: BaseServiceSettings) -> None:
    """Give `client` a fresh token from the configured auth method.

    Also the way back once a token reaches its maximum TTL and can no longer be renewed
    (`clinical_platform.security.token_renewal.VaultTokenRenewer` calls it).
    """
    method = settings.vault_auth_method
    match method:
        case "token":
            client.token = _required("VAULT_TOKEN", _reveal(settings.vault_token), method)
        case "approle":
            client.auth.approle.login(
                role_id=_required("VAULT_ROLE_ID", settings.vault_role_id, method),
                secret_id=_required("VAULT_SECRET_ID", _reveal(settings.vault_secret_id), method),
            )
        case "kubernetes":
            role = _required("VAULT_K8S_ROLE", settings.vault_k8s_role, method)
            client.auth.kubernetes.login(role=role, jwt=_service_account_jwt(settings))
        case _:
            assert_never(method)


def _service_account_jwt(settings: BaseServiceSettings) -> str:
    # A file, not a variable: Kubernetes projects the token there and rotates it.
    try:
        return settings.vault_k8s_jwt_path.read_text(encoding="utf-8").strip()
    except OSError as unreadable:
        raise SettingsError(f"VAULT_K8S_JWT_PATH: cannot read token: {unreadable}") from None


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _required(variable: str, value: str | None, method: str) -> str:
    if not value:
        raise SettingsError(f"{variable}: required when VAULT_AUTH_METHOD={method}")
    return value
