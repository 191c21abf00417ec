"""A webhook endpoint on 127.0.0.1 for tests: answers notify's handshake, keeps every other
POST with its headers and exact body (what a Standard Webhooks signature covers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["WebhookReceiver", "webhook_receiver"]


@dataclass
class WebhookReceiver:
    """``url`` to subscribe with; ``posts`` in arrival order as (headers, body)."""

    url: str = ""
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(body)
        if payload.get("type") == "webhook.handshake":
            return web.json_response({"challenge": payload["data"]["challenge"]})
        self.posts.append((dict(request.headers), body))
        return web.Response(status=204)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A receiver listening on a free loopback port until the context ends."""
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
