"""A JSON Web Key Set read from a URL: the signing keys of an issuer, kept fresh.

The gateway reads its identity provider's keys this way, and every service reads the gateway's
(``/.well-known/jwks.json``). A ``kid`` not in the set refreshes it, at most once per
``min_refresh_interval_s``, so tokens naming junk keys cannot make us hammer the issuer; a set
older than ``max_age_s`` is read again before use, so a key the issuer retired stops being
trusted. An issuer that cannot be reached keeps the keys we already have (and says so in the
log) rather than refusing every caller.

PyJWT parses the keys; a key of a type or algorithm it does not verify with is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

logger = logging.getLogger(__name__)


class KeySetUnavailableError(Exception):
    """The key set (or the document naming it) could not be read; the message has no data."""


class RemoteKeySet:
    """The signing keys published at ``url``, by ``kid``."""

    def __init__(
        self,
        url: str = "",
        *,
        http: httpx.AsyncClient | None = None,
        min_refresh_interval_s: float = 30.0,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http
        self._min_refresh = min_refresh_interval_s
        self._max_age = max_age_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    @property
    def loaded(self) -> bool:
        return self._read_at is not None

    def published(self) -> list[PyJWK]:
        return list(self._keys.values())

    async def load(self) -> None:
        """Read the set now; KeySetUnavailableError when it cannot be read."""
        async with self._lock:
            self._keys = signing_keys(await get_json(self.url, self._http))
            self._read_at = self._clock()

    async def key(self, kid: str) -> PyJWK | None:
        """The key named ``kid``, reading the set again when it is unknown or the set is old."""
        if self._read_at is None:
            await self.load()
        elif kid not in self._keys or self._stale():
            await self._refresh()
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return (
            self._max_age is not None
            and self._read_at is not None
            and self._clock() - self._read_at >= self._max_age
        )

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < self._min_refresh:
                return
            self._read_at = now
            try:
                document = await get_json(self.url, self._http)
            except KeySetUnavailableError as unreachable:
                logger.warning("signing key set unreachable (%s); keeping the known keys",
                               unreachable)  # fmt: skip
                return
            self._keys = signing_keys(document)
            self.refreshes += 1


async def get_json(url: str, http: httpx.AsyncClient | None = None) -> Mapping[str, Any]:
    """A JSON object from ``url``; KeySetUnavailableError (naming only the failure) otherwise."""
    try:
        if http is None:
            async with httpx.AsyncClient() as client:
                response = await client.get(url, timeout=5.0)
        else:
            response = await http.get(url, timeout=5.0)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as failed:
        raise KeySetUnavailableError(type(failed).__name__) from None
    if not isinstance(document, dict):
        raise KeySetUnavailableError("not a JSON object")
    return document


def signing_keys(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The set's signature keys that name a ``kid``, by ``kid``."""
    keys: dict[str, PyJWK] = {}
    for jwk in document.get("keys", ()):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or "kid" not in jwk:
            continue
        try:
            keys[str(jwk["kid"])] = PyJWK(jwk)
        except PyJWKError:
            continue  # a key type or algorithm we do not verify with
    return keys
