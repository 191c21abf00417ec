"""POSTs signed notifications to webhook endpoints (Standard Webhooks).

Each request carries ``webhook-id`` (the notification's id: the same on every retry, so the
receiver can drop duplicates), ``webhook-timestamp`` (the attempt's time, seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` per signing secret,
space-separated, so a receiver holding either secret verifies during a rotation.

Failures are described without the response body or the URL (either may echo PHI or
credentials): ``HTTP 503``, ``timed out``, ``connection failed``, ``address not allowed``.
Every connection passes the egress policy (adapters/egress.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets as random_tokens
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks.webhooks import Webhook

from clinical_platform.observability.webhooks import inject_trace_headers
from notify.adapters.egress import (
    EgressDeniedError,
    EgressPolicy,
    connector_options,
    literal_denied,
)
from notify.ports import Outcome

HANDSHAKE_TYPE = "webhook.handshake"
JSON = "application/json"
_DENIED = Outcome("address not allowed")
_MAX_HANDSHAKE_BODY = 4096


def signed_headers(
    message_id: str, body: str, secrets: Sequence[str], at: datetime,
    content_type: str = JSON,
) -> dict[str, str]:  # fmt: skip
    """Standard Webhooks headers for ``body``, one signature per secret."""
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": content_type,
    }


def webhook_body(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The JSON body: ``{"type", "timestamp", "data"}``, compact and key-ordered."""
    payload = {"type": event_type, "timestamp": at.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


class WebhookSender:
    """One HTTP client for every endpoint; a slow or dead endpoint costs only its own request."""

    def __init__(self, *, timeout_s: float, policy: EgressPolicy) -> None:
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = f"clinical-notify/{version('clinical-notify')}"

    async def start(self) -> None:
        # No connection limit per host: subscriptions sharing a host must not queue behind
        # each other's retries; each request is bounded by the timeout instead.
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, **connector_options(self._policy)
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers={"user-agent": self._user_agent}
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, content_type: str = JSON,
    ) -> Outcome:  # fmt: skip
        """POST once; never raises for the endpoint's failures."""
        outcome, _ = await self._post(url, message_id, body, secrets, content_type=content_type)
        return outcome

    async def handshake(self, url: str, subscription_id: str, secret: str) -> Outcome:
        """Ask the endpoint to echo a random challenge, signed with the new secret."""
        challenge = random_tokens.token_urlsafe(24)
        now = datetime.now(UTC)
        body = webhook_body(
            HANDSHAKE_TYPE, now, {"subscription_id": subscription_id, "challenge": challenge}
        )
        message_id = f"handshake_{random_tokens.token_hex(12)}"
        outcome, answer = await self._post(url, message_id, body, [secret], read_body=True)
        if not outcome.delivered:
            return outcome
        try:
            echoed = json.loads(answer or b"").get("challenge")
        except (ValueError, AttributeError):
            echoed = None
        if echoed != challenge:
            return Outcome("the response did not echo the challenge")
        return outcome

    async def _post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, read_body: bool = False, content_type: str = JSON,
    ) -> tuple[Outcome, bytes | None]:  # fmt: skip
        if self._session is None:
            msg = "WebhookSender.start() was not called"
            raise RuntimeError(msg)
        if literal_denied(self._policy, urlsplit(url).hostname or ""):
            return _DENIED, None
        headers = signed_headers(message_id, body, secrets, datetime.now(UTC), content_type)
        inject_trace_headers(headers)  # traceparent of the current span (docs/observability.md)
        try:
            async with self._session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                answer = await response.content.read(_MAX_HANDSHAKE_BODY) if read_body else None
                if 200 <= response.status < 300:
                    return Outcome(None), answer
                return Outcome(f"HTTP {response.status}"), None
        except asyncio.CancelledError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as failed:
            return _failure(failed), None


def _failure(failed: BaseException) -> Outcome:
    """What went wrong, in words that carry neither the URL nor the response."""
    if isinstance(failed, TimeoutError):
        return Outcome("timed out")
    if isinstance(failed, aiohttp.ClientConnectorError) and isinstance(
        failed.os_error, EgressDeniedError
    ):
        return _DENIED
    if isinstance(failed, aiohttp.ClientError):
        return Outcome(f"connection failed ({type(failed).__name__})")
    return Outcome(f"request failed ({type(failed).__name__})")
