"""Keeps a service's Vault token alive in the background.

A renewable token (AppRole, Kubernetes) is renewed with renew-self at two thirds of its TTL.
When it can no longer be extended (it reached its maximum TTL, or is not renewable) the
renewer logs in again through the configured auth method. A token without a TTL (the local
dev/root token) needs nothing, and the renewer ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import hvac

from clinical_platform.security.errors import KeyServiceUnavailableError
from clinical_platform.security.vault_adapters import vault_call

logger = logging.getLogger(__name__)


class VaultTokenRenewer:
    """``await renewer.start()`` after building the client; ``await renewer.stop()`` on exit.

    ``log_in`` gives the client a fresh token (``lambda: log_in(client, settings)`` from
    `clinical_platform.clients.vault`); without it, a token that cannot be renewed expires.
    """

    def __init__(
        self,
        client: hvac.Client,
        log_in: Callable[[], None] | None = None,
        *,
        renew_at: float = 2 / 3,
        retry_after_s: float = 5.0,
        min_sleep_s: float = 0.5,
    ) -> None:
        self._client = client
        self._log_in = log_in
        self._renew_at = renew_at
        self._retry_after_s = retry_after_s
        self._min_sleep_s = min_sleep_s
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0
        self.logins = 0

    @property
    def running(self) -> bool:
        """False before start, after stop, and once it found a token that never expires."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vault-token-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                ttl, renewable = await asyncio.to_thread(self._lookup)
            except KeyServiceUnavailableError as unavailable:
                logger.warning("cannot look up the Vault token; retrying",
                               extra={"reason": unavailable.reason})  # fmt: skip
                await asyncio.sleep(self._retry_after_s)
                continue
            if ttl == 0:
                logger.info("the Vault token does not expire; nothing to renew")
                return
            await asyncio.sleep(max(self._min_sleep_s, ttl * self._renew_at))
            try:
                await asyncio.to_thread(self._extend, ttl, renewable)
            except Exception as failed:
                # Keep trying while the token may still be valid; a dead renewer is silent.
                logger.warning("Vault token not renewed; retrying",
                               extra={"error": type(failed).__name__})  # fmt: skip
                await asyncio.sleep(self._retry_after_s)

    def _lookup(self) -> tuple[int, bool]:
        with vault_call("look up the token"):
            data: dict[str, Any] = self._client.auth.token.lookup_self()["data"]
        return int(data.get("ttl") or 0), bool(data.get("renewable"))

    def _extend(self, ttl: int, renewable: bool) -> None:
        if renewable:
            with vault_call("renew the token"):
                granted = int(self._client.auth.token.renew_self()["auth"]["lease_duration"])
            self.renewals += 1
            # Capped by its maximum TTL: the token will expire before the next renewal could
            # extend it, so get a new one while this one still works.
            if granted >= ttl * self._renew_at or self._log_in is None:
                return
        if self._log_in is None:
            logger.error("the Vault token cannot be renewed and no login method is configured")
            return
        with vault_call("log in"):
            self._log_in()
        self.logins += 1
        logger.info("logged in to Vault again with a fresh token")
