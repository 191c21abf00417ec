"""Vault tokens stay alive: renewed in the background, or replaced by a fresh login."""

from __future__ import annotations

import asyncio

import hvac
import pytest
from clinical_testing.waiting import eventually

from clinical_platform.security.token_renewal import VaultTokenRenewer

pytestmark = pytest.mark.integration


def _token(vault: hvac.Client, **options: object) -> str:
    return str(vault.auth.token.create(policies=["default"], **options)["auth"]["client_token"])


def _alive(client: hvac.Client) -> bool:
    try:
        client.auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


async def test_renewable_token_outlives_its_ttl_while_the_renewer_runs(vault: hvac.Client) -> None:
    client = hvac.Client(url=vault.url, token=_token(vault, ttl="2s", renewable=True))
    renewer = VaultTokenRenewer(client, min_sleep_s=0.2)

    await renewer.start()
    try:
        await asyncio.sleep(4)  # not a wait: the token must live past its 2 s TTL
        assert _alive(client)
        assert renewer.renewals >= 2
    finally:
        await renewer.stop()


async def test_token_that_cannot_be_renewed_is_replaced_by_logging_in_again(
    vault: hvac.Client,
) -> None:
    client = hvac.Client(url=vault.url, token=_token(vault, ttl="2s", renewable=False))
    first = client.token

    def log_in() -> None:  # what clients.vault.log_in does for AppRole or Kubernetes
        client.token = _token(vault, ttl="2s", renewable=False)

    renewer = VaultTokenRenewer(client, log_in, min_sleep_s=0.2)
    await renewer.start()
    try:
        await eventually(lambda: renewer.logins >= 1 and client.token != first, within_s=10)
        assert client.token != first
        assert _alive(client)
        assert renewer.logins >= 1
    finally:
        await renewer.stop()


async def test_a_token_without_ttl_needs_no_renewal(vault: hvac.Client) -> None:
    renewer = VaultTokenRenewer(vault)

    await renewer.start()
    await eventually(lambda: not renewer.running, within_s=5)

    assert not renewer.running
    assert renewer.renewals == renewer.logins == 0
