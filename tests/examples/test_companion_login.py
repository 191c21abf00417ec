"""The companion login example against the real Keycloak: authorization code + PKCE, the login
page driven in a real browser (Debian's Chromium, headless, through Playwright), then the
gateway. The refusal of a code without its verifier posts the forms with an HTTP client."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from clinical_testing.keycloak import Keycloak, running_keycloak, totp
from clinical_testing.service_process import free_tcp_port
from companion_login import CALLBACK_PORT, Login, wait_for_code, whoami
from playwright.async_api import async_playwright

from gateway.bootstrap import gateway_http_app, serving_http
from gateway.settings import GatewaySettings
from localinfra import chromium

pytestmark = pytest.mark.integration

FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
CALLBACK_URL = f"http://127.0.0.1:{CALLBACK_PORT}/callback"


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        yield server


@pytest.fixture
async def gateway(keycloak: Keycloak, tmp_path: Path) -> AsyncIterator[str]:
    settings = GatewaySettings(
        oidc_issuer=keycloak.issuer, signing_keys_file=tmp_path / "k.pem", access_trail=False
    )
    port = free_tcp_port()
    async with (
        gateway_http_app(settings) as (asgi, _),
        serving_http(asgi, "127.0.0.1", port),
    ):
        yield f"http://127.0.0.1:{port}"


class Browser:
    """What the test needs of a browser: forms, and cookies. Keycloak marks its cookies Secure;
    browsers send those to http://127.0.0.1 (a loopback origin counts as secure), httpx does
    not, so this one keeps them itself."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._cookies: dict[str, str] = {}

    async def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        cookie = "; ".join(f"{name}={value}" for name, value in self._cookies.items())
        answer = await self._client.request(method, url, headers={"cookie": cookie}, **kwargs)  # type: ignore[arg-type]
        self._cookies.update(answer.cookies.items())
        return answer


async def log_in(browser: Browser, url: str, username: str) -> str:
    """Fill Keycloak's login page (and its OTP page when asked); the redirect's location."""
    page = await browser.request("GET", url)
    credentials = {"username": username, "password": f"{username}-local"}
    answer = await browser.request("POST", _action(page.text), data=credentials)
    if answer.status_code == 200 and "otp" in answer.text.lower():
        answer = await browser.request("POST", _action(answer.text), data={"otp": totp(username)})
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["location"]


def _action(page: str) -> str:
    match = FORM_ACTION.search(page)
    assert match, "no form on the page"
    return html.unescape(match.group(1))


# user, scopes, then what the gateway sees: roles and MFA (the clinician passes the OTP page)
USERS = [
    ("patient", "patient/*.rs launch/patient", ["patient"], False),
    ("clinician", "user/*.cruds", ["clinician"], True),
]


@pytest.fixture(scope="module")
def browser_executable() -> Path:
    # Debian's chromium (installed by the project's installer when missing), never a download.
    return chromium.install()


async def _log_in_with_chromium(executable: Path, url: str, username: str, otp: bool) -> None:
    """Keycloak's login page in Chromium: the user's password, then the one-time code when the
    realm asks for it; Keycloak then sends the browser to the app's redirect URI."""
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(
            executable_path=str(executable), args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.fill("#username", username)
            await page.fill("#password", f"{username}-local")
            await page.click("#kc-login")
            if otp:
                await page.locator("#otp").wait_for(timeout=30_000)
                await page.fill("#otp", totp(username))
                await page.click("#kc-login")
            await page.wait_for_url(f"{CALLBACK_URL}?*", timeout=30_000)
        finally:
            await browser.close()


@pytest.mark.parametrize("user", USERS, ids=[u[0] for u in USERS])
async def test_a_companion_app_logs_in_with_pkce_and_calls_the_gateway(
    keycloak: Keycloak, gateway: str, user: tuple[str, str, list[str], bool],
    browser_executable: Path,
) -> None:  # fmt: skip
    username, scope, roles, mfa = user
    login = Login(CALLBACK_URL, scope, issuer=keycloak.issuer)
    code = asyncio.create_task(wait_for_code(login, CALLBACK_PORT))
    await asyncio.sleep(0.2)  # the callback server is listening
    await _log_in_with_chromium(browser_executable, login.authorization_url(), username, mfa)
    async with aiohttp.ClientSession() as session:
        tokens = await login.exchange(session, await asyncio.wait_for(code, 10))
        me = await whoami(session, gateway, tokens["access_token"])
    assert (me["roles"], me["mfa"], me["client_id"]) == (roles, mfa, "companion-app")


async def test_a_code_without_its_verifier_is_refused(keycloak: Keycloak) -> None:
    port = CALLBACK_PORT
    login = Login(f"http://127.0.0.1:{port}/callback", "patient/*.rs", issuer=keycloak.issuer)
    code = asyncio.create_task(wait_for_code(login, port))
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(timeout=30) as client:
        await client.get(await log_in(Browser(client), login.authorization_url(), "patient"))
    thief = Login(login.redirect_uri, login.scope, issuer=keycloak.issuer)  # another verifier
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RuntimeError, match="refused"):
            await thief.exchange(session, await asyncio.wait_for(code, 10))
