"""The local Keycloak for tests: started through localinfra, tokens for the realm's users.

The realm file (infra/keycloak/clinical-realm.json) defines the users, their passwords
(``<username>-local``) and the OTP secrets (``<username>-otp-secret-local``): local use only.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp

REALM = "clinical"
# The realm file's confidential clients and their local-only secrets.
CLIENT_SECRETS = {"partner-lab-system": "partner-lab-local-secret",
                  "bulk-export-system": "bulk-export-local-secret"}  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[4]


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
        secret = CLIENT_SECRETS[client_id]
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


_USED_CODES: dict[str, str] = {}


def totp(username: str) -> str:
    """A TOTP code of a realm user with OTP configured that this process has not used yet:
    Keycloak accepts each code once, so a second login in the same 30 s waits for the next."""
    generator = pyotp.TOTP(base64.b32encode(f"{username}-otp-secret-local".encode()).decode())
    code = generator.now()
    while code == _USED_CODES.get(username):
        time.sleep(1)
        code = generator.now()
    _USED_CODES[username] = code
    return code


@contextmanager
def running_keycloak(environ: Mapping[str, str] = os.environ) -> Iterator[Keycloak]:
    """Start the local Keycloak through localinfra unless it runs; stop it afterwards if we
    started it (unless CLINICAL_KEEP_INFRA is set)."""
    env = {**environ, "PYTHONPATH": str(REPO_ROOT / "infra" / "local")}
    started = " started " in _localinfra(env, "up", "keycloak")
    data_dir = Path(environ.get("CLINICAL_INFRA_DIR") or REPO_ROOT / ".infra")
    admin = json.loads((data_dir / "keycloak" / "admin.json").read_text())
    port = environ.get("CLINICAL_KEYCLOAK_PORT") or "18180"
    try:
        yield Keycloak(f"http://127.0.0.1:{port}", admin["username"], admin["password"])
    finally:
        if started and not environ.get("CLINICAL_KEEP_INFRA"):
            _localinfra(env, "down", "keycloak")


def _localinfra(env: Mapping[str, str], *args: str) -> str:
    # Our own interpreter running our own module with fixed arguments.
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "localinfra", *args],
        cwd=REPO_ROOT, env=dict(env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        msg = f"localinfra {' '.join(args)} failed:\n{completed.stderr}"
        raise RuntimeError(msg)
    return f"{completed.stdout} "
