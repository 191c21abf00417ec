"""Logging in: the password grant, authorization code + PKCE on a loopback redirect, the token
cache (mode 0600) per profile, refresh when expired; profiles in config.toml."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from clinical_cli.app import app
from clinical_cli.errors import ExitCode
from clinical_cli.session import Wiring
from clinical_cli.tokens import CachedTokens, load_tokens, save_tokens, token_file

from .fakes import FakePlatform

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("CLINICAL_TOKEN", raising=False)
    monkeypatch.delenv("CLINICAL_PROFILE", raising=False)
    return tmp_path


class FakeKeycloak:
    """The token endpoint: remembers each form, answers tokens numbered in order."""

    def __init__(self, status: int = 200) -> None:
        self.forms: list[dict[str, str]] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(dict(urllib.parse.parse_qsl(request.content.decode())))
        if self.status != 200:
            refusal = {"error": "invalid_grant", "error_description": "Invalid user credentials"}
            return httpx.Response(self.status, json=refusal)
        return httpx.Response(200, json={
            "access_token": f"access-{len(self.forms)}", "expires_in": 300,
            "refresh_token": f"refresh-{len(self.forms)}", "refresh_expires_in": 1800,
        })  # fmt: skip


def run(keycloak: FakeKeycloak, args: list[str], platform: FakePlatform | None = None,
        input: str | None = None) -> Result:  # fmt: skip
    wiring = Wiring(api=(platform or FakePlatform()).connect,
                    oidc_transport=httpx.MockTransport(keycloak))  # fmt: skip
    return CliRunner().invoke(app, args, obj=wiring, input=input)


def test_password_login_caches_the_tokens_readable_by_the_user_only(config_dir: Path) -> None:
    keycloak = FakeKeycloak()
    platform = FakePlatform(answers={"GetOrder": {"order": {"order_id": "o-1"}}})

    login = run(keycloak, ["login", "--username", "lab", "--password-stdin"], input="lab-local\n")
    call = run(keycloak, ["order", "get", "o-1"], platform)

    assert login.exit_code == 0, login.output
    assert keycloak.forms == [{"grant_type": "password", "client_id": "clinical-cli",
                               "username": "lab", "password": "lab-local",
                               "scope": "user/*.cruds"}]  # fmt: skip
    cache = token_file("local")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert cache.parent.parent == config_dir
    assert call.exit_code == 0
    assert platform.tokens == ["access-1"]


def test_a_refused_login_is_an_authentication_error_without_the_password() -> None:
    args = ["login", "--username", "lab", "--password-stdin", "--otp", "123456"]
    result = run(FakeKeycloak(status=401), args, input="s3cret-pw-value\n")

    assert result.exit_code == ExitCode.AUTH
    assert "Invalid user credentials" in result.stderr
    assert "s3cret-pw-value" not in result.output


def test_an_expired_access_token_is_refreshed_and_the_cache_updated() -> None:
    keycloak = FakeKeycloak()
    now = time.time()
    save_tokens("local", CachedTokens("old", now - 1, "refresh-old", now + 600, "clinical-cli"))
    platform = FakePlatform()

    result = run(keycloak, ["order", "get", "o-1"], platform)

    assert result.exit_code == 0
    assert keycloak.forms == [{"grant_type": "refresh_token", "client_id": "clinical-cli",
                               "refresh_token": "refresh-old"}]  # fmt: skip
    assert platform.tokens == ["access-1"]
    assert load_tokens("local").access_token == "access-1"  # noqa: S105 - the fake's token


def test_an_expired_login_without_refresh_says_log_in_again() -> None:
    save_tokens("local", CachedTokens("old", time.time() - 1, "", 0.0, "clinical-cli"))

    result = run(FakeKeycloak(), ["order", "get", "o-1"])

    assert result.exit_code == ExitCode.AUTH
    assert "clinical login" in result.stderr


def test_profiles_keep_their_own_settings_and_tokens(config_dir: Path) -> None:
    keycloak = FakeKeycloak()

    saved = run(keycloak, ["profile", "set", "staging", "--set", "gateway=https://gw.example",
                           "--set", "callback_port=0"])  # fmt: skip
    login = run(keycloak, ["--profile", "staging", "login", "--username", "lab",
                           "--password-stdin"], input="pw\n")  # fmt: skip
    shown = run(keycloak, ["-p", "staging", "-o", "json", "profile", "show"])

    assert saved.exit_code == login.exit_code == shown.exit_code == 0
    profile = json.loads(shown.stdout)
    assert profile["gateway"] == "https://gw.example"
    assert profile["callback_port"] == 0
    assert profile["patient"] == "127.0.0.1:18051"
    assert token_file("staging").exists()
    assert not token_file("local").exists()
    assert stat.S_IMODE((config_dir / "config.toml").stat().st_mode) == 0o600


def test_browser_login_exchanges_the_code_with_the_pkce_verifier() -> None:
    keycloak = FakeKeycloak()
    run(keycloak, ["profile", "set", "local", "--set", "callback_port=0"])
    visited: list[str] = []

    def browser(url: str) -> None:
        visited.append(url)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))

        def come_back() -> None:
            httpx.get(f"{query['redirect_uri']}?state=wrong&code=stolen")
            httpx.get(f"{query['redirect_uri']}?state={query['state']}&code=the-code")

        threading.Thread(target=come_back).start()

    wiring = Wiring(api=FakePlatform().connect, oidc_transport=httpx.MockTransport(keycloak),
                    open_browser=browser)  # fmt: skip
    result = CliRunner().invoke(app, ["login"], obj=wiring)

    assert result.exit_code == 0, result.output
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(visited[0]).query))
    assert query["client_id"] == "companion-app"
    assert query["code_challenge_method"] == "S256"
    (form,) = keycloak.forms
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    assert load_tokens("local").client_id == "companion-app"


def test_logout_forgets_the_cached_tokens() -> None:
    save_tokens("local", CachedTokens("a", time.time() + 600))

    result = run(FakeKeycloak(), ["logout"])

    assert result.exit_code == 0
    assert not token_file("local").exists()
