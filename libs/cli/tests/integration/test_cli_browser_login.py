"""clinical login without --username: authorization code + PKCE against the real Keycloak, its
login page filled in Debian's Chromium (Playwright, headless) at the URL the CLI opens."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from clinical_testing.keycloak import Keycloak
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from clinical_cli.app import app
from clinical_cli.session import Wiring
from clinical_cli.tokens import load_tokens, token_file
from localinfra import chromium

pytestmark = pytest.mark.integration


def chromium_logging_in(executable: Path, username: str) -> Callable[[str], None]:
    """A browser opener that logs ``username`` in on Keycloak's page and follows the redirect
    back to the CLI's loopback callback."""

    def open_browser(url: str) -> None:
        with sync_playwright() as playwright:
            # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
            browser = playwright.chromium.launch(executable_path=str(executable),
                                                 args=["--no-sandbox"])  # fmt: skip
            try:
                page = browser.new_page()
                page.goto(url)
                page.fill("#username", username)
                page.fill("#password", f"{username}-local")
                page.click("#kc-login")
                page.wait_for_url("http://127.0.0.1:*/callback?*", timeout=30_000)
            finally:
                browser.close()

    return open_browser


async def test_a_person_logs_in_in_the_browser_and_the_tokens_are_cached(
    keycloak: Keycloak, cli_config: Path
) -> None:
    executable = chromium.install()  # Debian's package, never a downloaded browser
    wiring = Wiring(open_browser=chromium_logging_in(executable, "registrar"))
    runner = CliRunner()
    issuer = ["profile", "set", "local", "--set", f"issuer={keycloak.issuer}"]
    assert runner.invoke(app, issuer).exit_code == 0

    result = await asyncio.to_thread(runner.invoke, app, ["login"], obj=wiring)

    assert result.exit_code == 0, result.output
    assert "Log in at: http://127.0.0.1:" in result.stderr
    tokens = load_tokens("local")
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["azp"] == "companion-app"
    assert claims["iss"] == keycloak.issuer
    assert tokens.client_id == "companion-app"
    assert tokens.refresh_token
    assert stat.S_IMODE(token_file("local").stat().st_mode) == 0o600
