"""A command's provenance, read from the gRPC call that carried it."""

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.grpc_context import caller_origin, command_context, peer_ip
from clinical_platform.grpc_server import GrpcService, start_grpc_server

pytestmark = pytest.mark.unit

SERVICE = "clinical.test.v1.ContextService"
ACTOR = Actor("dr-house", ("clinician",))
Call = Callable[..., Awaitable[CommandContext]]


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:%5B2001:db8::7%5D:443", "2001:db8::7"),
        ("unix:/run/clinical.sock", ""),
        ("", ""),
    ],
)
def test_peer_ip_is_the_address_without_transport_or_port(peer: str, ip: str) -> None:
    assert peer_ip(peer) == ip


@pytest.fixture
async def call_with() -> AsyncIterator[Call]:
    """Call a real server on a loopback host; return the CommandContext its servicer built."""
    seen: list[CommandContext] = []
    tracer = TracerProvider().get_tracer("test")

    async def record(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # As if the server's gRPC instrumentation had opened a span for the call.
        with tracer.start_as_current_span("Record"):
            seen.append(command_context(context, actor=ACTOR, request_id=request.decode()))
        return b""

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(record)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Record": handler}),)
        )

    servers = []

    async def call(host: str, metadata: tuple[tuple[str, str], ...] = ()) -> CommandContext:
        try:
            server = await start_grpc_server(
                host=host, port=0, services=[GrpcService(SERVICE, register)]
            )
        except RuntimeError:
            pytest.skip(f"cannot listen on {host} here")
        servers.append(server)
        target = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
        async with grpc.aio.insecure_channel(target) as channel:
            await channel.unary_unary(f"/{SERVICE}/Record")(b"req-7", metadata=metadata, timeout=5)
        return seen[-1]

    yield call
    for server in servers:
        await server.stop(grace_seconds=0)


async def test_provenance_comes_from_peer_metadata_and_current_span(call_with: Call) -> None:
    metadata = (
        ("x-correlation-id", "flow-1"),
        ("x-causation-id", "event-0"),
        ("x-purpose-of-use", "ETREAT"),
    )

    provenance = await call_with("127.0.0.1", metadata)

    assert provenance.actor == ACTOR
    assert provenance.request_id == "req-7"
    assert provenance.source_ip == "127.0.0.1"
    assert provenance.user_agent.startswith("grpc-python")
    assert (provenance.correlation_id, provenance.causation_id) == ("flow-1", "event-0")
    assert provenance.purpose_of_use == "ETREAT"
    assert provenance.trace_context["traceparent"].startswith("00-")


async def test_purpose_of_use_defaults_to_treatment(call_with: Call) -> None:
    provenance = await call_with("127.0.0.1")

    assert provenance.purpose_of_use == "TREAT"
    assert (provenance.correlation_id, provenance.causation_id) == ("", "")


async def test_ipv6_peer_address_is_read_without_brackets(call_with: Call) -> None:
    provenance = await call_with("::1")

    assert provenance.source_ip == "::1"


async def test_the_gateways_forwarded_origin_is_the_end_users(call_with: Call) -> None:
    metadata = (("x-source-ip", "203.0.113.7"), ("x-user-agent", "Mozilla/5.0 (ward tablet)"))

    provenance = await call_with("127.0.0.1", metadata)

    assert (provenance.source_ip, provenance.user_agent) == (
        "203.0.113.7",
        "Mozilla/5.0 (ward tablet)",
    )


@pytest.mark.parametrize(
    ("forwarded", "seen"),
    [
        ({"x-source-ip": "not-an-address"}, "127.0.0.1"),
        ({"x-source-ip": "2001:db8::7"}, "2001:db8::7"),
    ],
)
def test_a_forwarded_address_counts_only_when_it_is_one(
    forwarded: dict[str, str], seen: str
) -> None:
    assert caller_origin(forwarded, "ipv4:127.0.0.1:5555") == (seen, "")
