"""A companion app's login: OpenID Connect authorization code + PKCE against Keycloak, then
calls through the gateway with the access token.

Copy it as a starting point. It

1. makes a PKCE pair (a random ``code_verifier`` and its S256 ``code_challenge``) and a random
   ``state``;
2. serves the redirect URI ``http://127.0.0.1:18057/callback`` (aiohttp) and prints the
   authorization URL of the ``companion-app`` client (open it in a browser and log in, e.g. as
   ``patient`` / ``patient-local``);
3. checks the ``state`` the callback brings back, then exchanges the code, with the verifier,
   for tokens at Keycloak's token endpoint;
4. calls the gateway: ``GET /api/v1/whoami`` (who the token says you are) and prints the answer.

    uv run --no-sync python examples/companion_login.py --scope "patient/*.rs launch/patient"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

ISSUER = "http://127.0.0.1:18180/realms/clinical"
GATEWAY = "http://127.0.0.1:18080"
CLIENT_ID = "companion-app"
CALLBACK_PORT = 18057


@dataclass(frozen=True)
class Login:
    """One authorization request: its PKCE verifier, state and redirect URI."""

    redirect_uri: str
    scope: str
    issuer: str = ISSUER
    client_id: str = CLIENT_ID
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def challenge(self) -> str:
        """RFC 7636 S256: BASE64URL(SHA-256(verifier)) without padding."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorization_url(self) -> str:
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "scope": f"openid {self.scope}".strip(),
            "state": self.state, "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{self.issuer}/protocol/openid-connect/auth?{query}"

    async def exchange(self, session: aiohttp.ClientSession, code: str) -> dict[str, Any]:
        """The token response for the code the callback received."""
        form = {"grant_type": "authorization_code", "client_id": self.client_id, "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": self.verifier}  # fmt: skip
        async with session.post(f"{self.issuer}/protocol/openid-connect/token", data=form) as r:
            body: dict[str, Any] = await r.json()
            if r.status != 200:
                msg = f"the token endpoint refused the code: {body.get('error')}"
                raise RuntimeError(msg)
            return body


async def wait_for_code(login: Login, port: int) -> str:
    """Serve the redirect URI until the browser comes back with our state and a code."""
    arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def callback(request: web.Request) -> web.Response:
        if request.query.get("state") != login.state or "code" not in request.query:
            return web.Response(status=400, text="unexpected callback")
        if not arrived.done():
            arrived.set_result(request.query["code"])
        return web.Response(text="Logged in: you can close this window.")

    app = web.Application()
    app.router.add_get("/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await arrived
    finally:
        await runner.cleanup()


async def whoami(session: aiohttp.ClientSession, gateway: str, access_token: str) -> Any:
    headers = {"authorization": f"Bearer {access_token}"}
    async with session.get(f"{gateway}/api/v1/whoami", headers=headers) as answer:
        return await answer.json()


async def main_async(args: argparse.Namespace) -> int:
    login = Login(f"http://127.0.0.1:{args.port}/callback", args.scope, issuer=args.issuer)
    print(f"open this URL and log in:\n{login.authorization_url()}", flush=True)
    code = await wait_for_code(login, args.port)
    async with aiohttp.ClientSession() as session:
        tokens = await login.exchange(session, code)
        print(json.dumps(await whoami(session, args.gateway, tokens["access_token"]), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", default="patient/*.rs launch/patient")
    parser.add_argument("--issuer", default=ISSUER)
    parser.add_argument("--gateway", default=GATEWAY)
    parser.add_argument("--port", type=int, default=CALLBACK_PORT)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
