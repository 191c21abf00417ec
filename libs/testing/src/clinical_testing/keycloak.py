"""The local Keycloak for tests: started through localinfra, tokens for the realm's users.

The realm file (infra/keycloak/clinical-realm.json) defines the users, their passwords
(``<username>-local``) and the OTP secrets (``<username>-otp-secret-local``): local use only.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from localinfra import keycloak as localinfra_keycloak
from localinfra.config import InfraConfig

REALM = "clinical"


@dataclass(frozen=True)
class Keycloak:
    url: str
    admin_username: str
    admin_password: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def token(self, **form: str) -> str:
        """An access token from the token endpoint (raises with Keycloak's error otherwise)."""
        answer = httpx.post(self.token_endpoint, data=form, timeout=30)
        if answer.status_code != 200:
            msg = f"Keycloak refused the token request: {answer.text}"
            raise AssertionError(msg)
        return str(answer.json()["access_token"])

    def user_token(self, username: str, scope: str = "", *, otp: bool = False,
                   client_id: str = "clinical-cli") -> str:  # fmt: skip
        """A scripted local user's token (password grant; with a TOTP code when ``otp``)."""
        form = {"grant_type": "password", "client_id": client_id, "username": username,
                "password": f"{username}-local"}  # fmt: skip
        if scope:
            form["scope"] = scope
        if otp:
            form["totp"] = totp(username)
        return self.token(**form)

    def client_token(self, scope: str = "", client_id: str = "partner-lab-system") -> str:
        """A partner system's token (client credentials)."""
        secret = "partner-lab-local-secret"  # noqa: S105 - the realm file's local-only secret
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": secret}  # fmt: skip
        if scope:
            form["scope"] = scope
        return self.token(**form)

    def admin_token(self) -> str:
        """The local administrator's token (realm ``master``: another issuer than ours)."""
        answer = httpx.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli",
                  "username": self.admin_username, "password": self.admin_password},
            timeout=30,
        )  # fmt: skip
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def admin(self) -> httpx.Client:
        """An HTTP client on Keycloak's admin API, authenticated as the local administrator."""
        token = self.admin_token()
        return httpx.Client(base_url=f"{self.url}/admin/realms/{REALM}",
                            headers={"authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip


def totp(username: str) -> str:
    """The current TOTP code of a realm user with OTP configured."""
    secret = f"{username}-otp-secret-local".encode()
    return pyotp.TOTP(base64.b32encode(secret).decode()).now()


@contextmanager
def running_keycloak(environ: Any = os.environ) -> Iterator[Keycloak]:
    """Start the local Keycloak unless it runs; stop it afterwards if we started it (unless
    CLINICAL_KEEP_INFRA is set)."""
    config = InfraConfig.from_env(environ)
    started = localinfra_keycloak.start(config)
    admin = localinfra_keycloak.admin_credentials(config)
    try:
        yield Keycloak(config.keycloak_url, admin["username"], admin["password"])
    finally:
        if started and not environ.get("CLINICAL_KEEP_INFRA"):
            localinfra_keycloak.process(config).stop()
