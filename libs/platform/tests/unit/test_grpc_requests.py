"""The request guard of every server: undecodable bytes and requests over their limits are
INVALID_ARGUMENT, answered before the servicer runs (finding 7 of issue 13: they were UNKNOWN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical.audit.v1 import audit_pb2
from clinical_platform import limits
from clinical_platform.grpc_errors import MAX_REPORTED_VIOLATIONS, invalid_argument
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.limits import RequestLimits, declare_limits
from clinical_platform.validation import FieldViolation

pytestmark = pytest.mark.unit

SERVICE = "clinical.guarded.v1.GuardedService"
GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
NOT_UTF8 = b"\x0a\x05\xff\xfe\xfd\xfc\xfb"


class Servicer:
    """Answers every request it is handed, and counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(
        self, request: audit_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.VerifyResponse:
        self.calls += 1
        return audit_pb2.VerifyResponse(ok=True)

    async def watch(
        self, request: audit_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[audit_pb2.VerifyResponse]:
        self.calls += 1
        yield audit_pb2.VerifyResponse(ok=True)

    async def refuse(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await invalid_argument(
            context, [FieldViolation(f"ids[{n}]", "is not a UUID") for n in range(25)]
        )

    def register(self, server: grpc.aio.Server) -> None:
        handlers = {
            "Verify": grpc.unary_unary_rpc_method_handler(
                self.verify,
                request_deserializer=audit_pb2.VerifyRequest.FromString,
                response_serializer=audit_pb2.VerifyResponse.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch,
                request_deserializer=audit_pb2.VerifyRequest.FromString,
                response_serializer=audit_pb2.VerifyResponse.SerializeToString,
            ),
            "Refuse": grpc.unary_unary_rpc_method_handler(self.refuse),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
def declared() -> Iterator[None]:
    """VerifyRequest's package with small caps, whatever the audit service declared."""
    saved = dict(limits._DECLARED)
    declare_limits(
        audit_pb2.DESCRIPTOR, RequestLimits(chars={"topic": 20}, counts={"partitions": 3})
    )
    yield
    limits._DECLARED.clear()
    limits._DECLARED.update(saved)


@pytest.fixture
async def served(declared: None) -> AsyncIterator[tuple[Servicer, grpc.aio.Channel]]:
    servicer = Servicer()
    server = await start_grpc_server(
        host="127.0.0.1", port=0, services=[GrpcService(SERVICE, servicer.register)]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield servicer, channel
    await server.stop(grace_seconds=0)


async def _refusal(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


def _violated(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return [violation.field for violation in bad_request.field_violations]


@pytest.mark.parametrize("body", [GARBAGE, NOT_UTF8, b"\x0a\xe8\x07"])
async def test_bytes_that_are_no_request_are_invalid_argument(
    served: tuple[Servicer, grpc.aio.Channel], body: bytes
) -> None:
    servicer, channel = served

    refused = await _refusal(channel.unary_unary(f"/{SERVICE}/Verify")(body, timeout=5))

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details() == "the request is not a valid protobuf message of this method"
    assert servicer.calls == 0


async def test_a_request_over_its_limits_is_refused_before_the_servicer_runs(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    servicer, channel = served
    request = audit_pb2.VerifyRequest(topic="t" * 21, partitions=[1, 2, 3, 4])

    refused = await _refusal(
        channel.unary_unary(f"/{SERVICE}/Verify")(request.SerializeToString(), timeout=5)
    )

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violated(refused) == ["topic", "partitions"]
    assert servicer.calls == 0


async def test_a_request_within_its_limits_reaches_the_servicer(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    servicer, channel = served
    request = audit_pb2.VerifyRequest(topic="t" * 20, partitions=[1, 2, 3])

    answer = await channel.unary_unary(f"/{SERVICE}/Verify")(request.SerializeToString(), timeout=5)

    assert audit_pb2.VerifyResponse.FromString(answer).ok
    assert servicer.calls == 1


@pytest.mark.parametrize("declared_purposes", [["treatment"], ["ETREAT", "TREAT"], [""]])
async def test_a_purpose_of_use_outside_the_value_set_is_refused_before_the_servicer_runs(
    served: tuple[Servicer, grpc.aio.Channel], declared_purposes: list[str]
) -> None:
    servicer, channel = served
    metadata = [("x-purpose-of-use", purpose) for purpose in declared_purposes]
    verify = channel.unary_unary(f"/{SERVICE}/Verify")

    refused = await _refusal(verify(b"", metadata=metadata, timeout=5))

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violated(refused) == ["x-purpose-of-use"]
    assert servicer.calls == 0


@pytest.mark.parametrize("purpose", ["TREAT", "ETREAT", "PATRQT", "HOPERAT"])
async def test_a_purpose_of_use_from_the_value_set_reaches_the_servicer(
    served: tuple[Servicer, grpc.aio.Channel], purpose: str
) -> None:
    servicer, channel = served
    verify = channel.unary_unary(f"/{SERVICE}/Verify")

    await verify(b"", metadata=[("x-purpose-of-use", purpose)], timeout=5)

    assert servicer.calls == 1


@pytest.mark.parametrize(
    "metadata",
    [
        [("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "   ")],
        [("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "r" * 501)],
        [
            ("x-purpose-of-use", "ETREAT"),
            ("x-break-glass-reason", "a"),
            ("x-break-glass-reason", "b"),
        ],
        [("x-purpose-of-use", "TREAT"), ("x-break-glass-reason", "arrest in the ED")],
        [("x-break-glass-reason", "arrest in the ED")],
    ],
    ids=["blank", "too-long", "twice", "not-etreat", "no-purpose"],
)
async def test_a_malformed_break_glass_is_refused_before_the_servicer_runs(
    served: tuple[Servicer, grpc.aio.Channel], metadata: list[tuple[str, str]]
) -> None:
    servicer, channel = served
    verify = channel.unary_unary(f"/{SERVICE}/Verify")

    refused = await _refusal(verify(b"", metadata=metadata, timeout=5))

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violated(refused) == ["x-break-glass-reason"]
    assert servicer.calls == 0


async def test_a_break_glass_with_etreat_and_a_reason_reaches_the_servicer(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    servicer, channel = served
    verify = channel.unary_unary(f"/{SERVICE}/Verify")
    metadata = [("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "cardiac arrest, ED")]

    await verify(b"", metadata=metadata, timeout=5)

    assert servicer.calls == 1


async def test_a_streaming_answer_is_guarded_as_well(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    servicer, channel = served
    watch = channel.unary_stream(f"/{SERVICE}/Watch")

    garbage = await _refusal(watch(GARBAGE, timeout=5).read())
    oversized = await _refusal(
        watch(audit_pb2.VerifyRequest(topic="t" * 21).SerializeToString(), timeout=5).read()
    )
    answers = [answer async for answer in watch(b"", timeout=5)]

    assert garbage.code() == oversized.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violated(oversized) == ["topic"]
    assert len(answers) == 1
    assert servicer.calls == 1


async def test_the_servers_own_health_check_is_guarded(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    _, channel = served
    check = channel.unary_unary("/grpc.health.v1.Health/Check")

    garbage = await _refusal(check(GARBAGE, timeout=5))
    answer = await check(health_pb2.HealthCheckRequest(service="").SerializeToString(), timeout=5)

    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert health_pb2.HealthCheckResponse.FromString(answer).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


async def test_a_refusal_lists_at_most_twenty_violations_and_counts_the_rest(
    served: tuple[Servicer, grpc.aio.Channel],
) -> None:
    _, channel = served

    refused = await _refusal(channel.unary_unary(f"/{SERVICE}/Refuse")(b"", timeout=5))

    assert _violated(refused) == [f"ids[{n}]" for n in range(MAX_REPORTED_VIOLATIONS)]
    assert refused.details().endswith("ids[19] and 5 more")
