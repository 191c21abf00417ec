"""Where webhooks may go: public addresses only, checked on the address actually connected to.

A webhook URL is the caller's choice, so without a policy notify would POST wherever it is
pointed: the cluster's API server, Vault, the cloud metadata service, a neighbour's admin port.
Every connection therefore resolves the host once, keeps only addresses the policy allows and
connects to one of those (the resolver below is the connector's only source of addresses, and
the DNS cache is off), so a name that passed a check cannot rebind to an internal address for
the connection. Denied: loopback, private, link-local (metadata services), CGNAT, multicast,
reserved and unspecified ranges, and IPv6 forms embedding such an IPv4 address (mapped, 6to4,
Teredo). Local development allows networks by name (``NOTIFY_WEBHOOK_ALLOW_NETWORKS``;
`make run` allows loopback for its companion app).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressDeniedError(OSError):
    """No address of the endpoint is one notify may connect to."""


class EgressPolicy:
    """Allows public unicast addresses, plus the networks it is told to allow."""

    def __init__(self, allowed_networks: Iterable[Network] = ()) -> None:
        self._allowed = tuple(allowed_networks)

    @classmethod
    def from_setting(cls, networks: Sequence[str]) -> EgressPolicy:
        """From CIDR strings; a malformed one raises ValueError (settings validation)."""
        return cls(ipaddress.ip_network(network, strict=False) for network in networks)

    def allows(self, address: str | Address) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if any(ip in network for network in self._allowed):
            return True
        return all(_public(candidate) for candidate in _embedded(ip))


def _embedded(ip: Address) -> list[Address]:
    """The address and every IPv4 address an IPv6 address carries inside it."""
    found: list[Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        found += [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
        if ip.teredo is not None:
            found += list(ip.teredo)
    return found


def _public(ip: Address) -> bool:
    # is_global is False for private, loopback, link-local, CGNAT (100.64/10), reserved,
    # documentation and unspecified ranges; multicast is refused on its own.
    return ip.is_global and not ip.is_multicast


class PolicyResolver(AbstractResolver):
    """Resolves like aiohttp does, then drops every address the policy denies."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        allowed = [answer for answer in answers if self._policy.allows(answer["host"])]
        if not allowed:
            raise EgressDeniedError("the endpoint's address is not allowed")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def connector_options(policy: EgressPolicy) -> dict[str, Any]:
    """TCPConnector options that make every connection pass the policy."""
    return {"resolver": PolicyResolver(policy), "use_dns_cache": False}


def literal_denied(policy: EgressPolicy, host: str) -> bool:
    """True when ``host`` is an IP literal the policy denies (literals skip the resolver)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not policy.allows(ip)
