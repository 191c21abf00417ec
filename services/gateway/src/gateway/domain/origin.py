"""Where a request came from: the end user's address and user agent, as the services record them.

The address is the TCP peer's, unless the peer is a trusted proxy: then X-Forwarded-For is read
from its right end, each trusted hop stripped, and the first address no trusted proxy holds is
the client (the entries left of it are whatever the client wrote, so they never count).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# The envelope's limit (clinical_platform.eventlog.envelope): a longer one would fail the write.
MAX_USER_AGENT_CHARS = 512


@dataclass(frozen=True)
class ClientOrigin:
    source_ip: str = ""
    user_agent: str = ""


# The origin of the request being served: set by the edge for the request, read by the
# downstream adapter for each call it makes, as the current span carries the trace.
current_origin: ContextVar[ClientOrigin | None] = ContextVar("current_origin", default=None)


def trusted_networks(proxies: Iterable[str]) -> tuple[IpNetwork, ...]:
    """The proxies' addresses or networks ("10.0.0.7", "10.1.0.0/16"); ValueError if one is
    neither."""
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)


def client_origin(
    peer: str, forwarded_for: Iterable[str], user_agent: str, trusted: tuple[IpNetwork, ...]
) -> ClientOrigin:
    """The origin of a request from ``peer`` with these X-Forwarded-For header values."""
    client = _address(peer)
    if client is not None and _holds(trusted, client):
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage from the client's side: the last hop we trust is all we know
            client = address
            if not _holds(trusted, address):
                break
    return ClientOrigin(str(client) if client else "", user_agent[:MAX_USER_AGENT_CHARS])


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _holds(
    networks: tuple[IpNetwork, ...], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    return any(address in network for network in networks)
