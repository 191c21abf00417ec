"""The provenance of an inbound gRPC command, read from the call itself."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

import grpc

from clinical.events.v1 import provenance_pb2
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.envelope import current_trace_context
from clinical_platform.validation import FieldViolation

DEFAULT_PURPOSE_OF_USE = "TREAT"
PURPOSE_OF_USE_HEADER = "x-purpose-of-use"
# The end user's address and browser, as the gateway saw them: the call's own peer and
# `user-agent` are the gateway's (gRPC sets `user-agent` itself, whatever the caller sends).
SOURCE_IP_HEADER = "x-source-ip"
USER_AGENT_HEADER = "x-user-agent"
# The HL7 PurposeOfUse codes the proto knows (PURPOSE_OF_USE_<code>), UNSPECIFIED excepted.
PURPOSES_OF_USE = frozenset(
    value.name.removeprefix("PURPOSE_OF_USE_")
    for value in provenance_pb2.PurposeOfUse.DESCRIPTOR.values
    if value.number != provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED
)


def purpose_of_use_violation(metadata: Iterable[tuple[str, str | bytes]]) -> FieldViolation | None:
    """A declared purpose of use must be one of the value set's codes (absent means TREAT)."""
    declared = [value for key, value in metadata if key == PURPOSE_OF_USE_HEADER]
    if not declared or (len(declared) == 1 and declared[0] in PURPOSES_OF_USE):
        return None
    return FieldViolation(
        PURPOSE_OF_USE_HEADER,
        "must be one HL7 PurposeOfUse code: " + ", ".join(sorted(PURPOSES_OF_USE)),
    )


_DEADLINE_MARGIN_S = 0.2


def command_context(
    context: grpc.aio.ServicerContext, *, actor: Actor, request_id: str
) -> CommandContext:
    """Provenance for a command: caller address, user agent, workflow ids, purpose, trace.

    Reads the origin (`caller_origin`), metadata ``x-correlation-id``, ``x-causation-id`` and
    ``x-purpose-of-use`` (default ``TREAT``); the trace is the current span's. Values are taken
    as sent: `validate_envelope` checks them before anything is recorded.
    """
    metadata = {key: value for key, value in context.invocation_metadata() or () if key}
    source_ip, user_agent = caller_origin(metadata, context.peer())
    return CommandContext(
        actor=actor,
        request_id=request_id,
        purpose_of_use=str(metadata.get(PURPOSE_OF_USE_HEADER, DEFAULT_PURPOSE_OF_USE)),
        source_ip=source_ip,
        user_agent=user_agent,
        correlation_id=str(metadata.get("x-correlation-id", "")),
        causation_id=str(metadata.get("x-causation-id", "")),
        trace_context=current_trace_context(),
    )


def caller_origin(metadata: Mapping[str, str | bytes], peer: str) -> tuple[str, str]:
    """The end user's address and user agent: ``x-source-ip`` and ``x-user-agent`` when the
    gateway forwarded them, else the call's peer address and ``user-agent`` (a direct caller).

    Taken from authenticated internal callers as ``x-request-id`` and the purpose are; a
    forwarded address that is no IP address is not one, and the peer's counts instead.
    """
    forwarded_ip = str(metadata.get(SOURCE_IP_HEADER, ""))
    source_ip = forwarded_ip if _is_ip(forwarded_ip) else peer_ip(peer)
    forwarded_agent = metadata.get(USER_AGENT_HEADER)
    user_agent = metadata.get("user-agent", "") if forwarded_agent is None else forwarded_agent
    return source_ip, str(user_agent)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def peer_ip(peer: str) -> str:
    """The IP address in a gRPC peer string; empty for other transports (e.g. ``unix:``).

    ``ipv4:127.0.0.1:5555`` gives ``127.0.0.1``; ``ipv6:[::1]:5555`` gives ``::1``. gRPC
    percent-encodes the brackets of IPv6 peers in some versions (``ipv6:%5B::1%5D:5555``).
    """
    transport, _, address = unquote(peer).partition(":")
    if transport == "ipv4":
        return address.rpartition(":")[0]
    if transport == "ipv6":
        return address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    return ""


def read_wait_s(context: grpc.aio.ServicerContext, *, max_wait_s: float) -> float:
    """How long a read may wait for "at least version N": up to ``max_wait_s``, and a little
    before the call's deadline, so the caller gets our status rather than its own timeout."""
    remaining: float | None = context.time_remaining()
    if remaining is None:
        return max_wait_s
    return max(0.0, min(max_wait_s, remaining - _DEADLINE_MARGIN_S))
