"""Webhooks reach public addresses only: the policy, and the sender against a real local
endpoint (which only an allow-list lets it reach)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from notify.adapters.egress import EgressDeniedError, EgressPolicy, PolicyResolver
from notify.adapters.webhooks import WebhookSender

pytestmark = pytest.mark.unit

DENIED = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0",  # noqa: S104 - an address to refuse; nothing binds to it
    "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fd00::1", "::",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    "ff02::1",
]  # fmt: skip
ALLOWED = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", DENIED)
def test_internal_special_and_embedded_addresses_are_denied(address: str) -> None:
    assert not EgressPolicy().allows(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert EgressPolicy().allows(address)


def test_an_allow_list_opens_only_its_networks() -> None:
    policy = EgressPolicy.from_setting(["127.0.0.0/8"])

    assert policy.allows("127.0.0.1")
    assert not policy.allows("10.0.0.1")


class Answers(AbstractResolver):
    """A name server that answers what it is told (a rebinding attacker's, say)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_keeps_only_allowed_addresses_and_refuses_when_none_is() -> None:
    mixed = PolicyResolver(EgressPolicy(), Answers("93.184.216.34", "10.0.0.5"))
    internal = PolicyResolver(EgressPolicy(), Answers("169.254.169.254"))

    assert [a["host"] for a in await mixed.resolve("hooks.example", 443)] == ["93.184.216.34"]
    with pytest.raises(EgressDeniedError):
        await internal.resolve("hooks.example", 443)


@pytest.fixture
async def endpoint() -> AsyncIterator[int]:
    """A webhook receiver on loopback that accepts anything."""
    app = web.Application()

    async def accept(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_post("/hook", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_the_sender_never_reaches_loopback_by_address_or_by_name(
    endpoint: int, host: str
) -> None:
    sender = WebhookSender(timeout_s=2, policy=EgressPolicy())
    await sender.start()
    try:
        outcome = await sender.post(
            f"http://{host}:{endpoint}/hook", "msg_1", "{}", ["whsec_c2VjcmV0"]
        )
    finally:
        await sender.stop()

    assert outcome.error == "address not allowed"


async def test_an_allow_listed_network_is_reached(endpoint: int) -> None:
    sender = WebhookSender(timeout_s=2, policy=EgressPolicy.from_setting(["127.0.0.0/8"]))
    await sender.start()
    try:
        outcome = await sender.post(
            f"http://localhost:{endpoint}/hook", "msg_1", "{}", ["whsec_c2VjcmV0"]
        )
    finally:
        await sender.stop()

    assert outcome.error is None
