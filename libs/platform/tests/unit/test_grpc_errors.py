"""Event log failures reach gRPC clients as the status codes and details the API promises."""

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical_platform.eventlog.errors import (
    ConcurrencyError,
    EventLogError,
    EventLogUnavailableError,
    EventRejectedError,
    NotPartitionOwnerError,
    WriterFencedError,
    WriterOverloadedError,
)
from clinical_platform.grpc_errors import abort_for, failures_as_status
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.reads import VersionNotRecorded
from clinical_platform.security.errors import (
    KeyServiceUnavailableError,
    PatientForgottenError,
    PayloadIntegrityError,
    SecurityError,
    UnregisteredPatientError,
)
from clinical_platform.validation import FieldViolation

pytestmark = pytest.mark.unit

SERVICE = "clinical.test.v1.FailingService"
PATIENT_NAME = "Jane Q. Doe"

# The request body names the failure the servicer runs into.
FORGOTTEN_PATIENT = "5f0c1d7e-2b8a-4c61-9d0e-7a3b2c1d0e9f"
FAILURES: dict[str, EventLogError | SecurityError] = {
    "rejected": EventRejectedError(
        [
            FieldViolation("actor.subject", "must not be empty"),
            FieldViolation("envelope", "is 2048 bytes serialized, over the 1024-byte limit"),
        ]
    ),
    "concurrent": ConcurrencyError("0b6f9a6e-3f0e-4a53-9a50-0d5d4f1f6b1e", 3, 4),
    "not-owner": NotPartitionOwnerError(7, "10.0.0.12:18052"),
    "fenced": WriterFencedError(7),
    "overloaded": WriterOverloadedError(7, 0.25),
    "unavailable": EventLogUnavailableError("broker timed out"),
    "vault-sealed": KeyServiceUnavailableError("unwrap a data key: Vault is sealed"),
    "forgotten": PatientForgottenError(FORGOTTEN_PATIENT),
    "unregistered": UnregisteredPatientError(FORGOTTEN_PATIENT),
    "tampered": PayloadIntegrityError("the payload failed authentication"),
}


async def _fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"beyond":
        async with failures_as_status(context, {}):
            raise VersionNotRecorded(2**63 - 1)
    await abort_for(context, FAILURES[request.decode()])


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_fail)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Fail": handler}),)
    )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a real server whose one method aborts with the failure it is asked for."""
    server = await start_grpc_server(
        host="127.0.0.1", port=0, services=[GrpcService(SERVICE, _register)]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as open_channel:
        yield open_channel
    await server.stop(grace_seconds=0)


async def _failed_call(channel: grpc.aio.Channel, failure: str) -> grpc.aio.UnaryUnaryCall:
    call = channel.unary_unary(f"/{SERVICE}/Fail")(failure.encode(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    return call


async def _field_violations(call: grpc.aio.UnaryUnaryCall) -> tuple[int, list[tuple[str, str]]]:
    """The rich status's code and its ``google.rpc.BadRequest`` (field, description) pairs."""
    status = await rpc_status.aio.from_call(call)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return status.code, [(v.field, v.description) for v in bad_request.field_violations]


async def test_rejected_event_is_invalid_argument_with_bad_request_field_violations(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "rejected")

    code, violations = await _field_violations(call)
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert code == code_pb2.INVALID_ARGUMENT
    assert violations == [
        ("actor.subject", "must not be empty"),
        ("envelope", "is 2048 bytes serialized, over the 1024-byte limit"),
    ]
    assert await call.details() == "invalid fields: actor.subject, envelope"


async def test_lost_race_is_aborted_and_names_only_versions(channel: grpc.aio.Channel) -> None:
    call = await _failed_call(channel, "concurrent")

    assert await call.code() == grpc.StatusCode.ABORTED
    details = await call.details()
    assert "version 4" in details
    assert "version 3" in details
    assert "0b6f9a6e" not in details


async def test_non_owner_is_unavailable_and_points_at_the_owner(channel: grpc.aio.Channel) -> None:
    call = await _failed_call(channel, "not-owner")

    assert await call.code() == grpc.StatusCode.UNAVAILABLE
    trailing = await call.trailing_metadata()
    assert trailing.get("x-partition-owner") == "10.0.0.12:18052"


@pytest.mark.parametrize("failure", ["fenced", "unavailable"])
async def test_writer_failures_are_unavailable(channel: grpc.aio.Channel, failure: str) -> None:
    call = await _failed_call(channel, failure)

    assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert "broker" not in await call.details()


async def test_sealed_or_unreachable_vault_is_unavailable_so_phi_writes_are_retried_later(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "vault-sealed")

    assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert "sealed" not in await call.details()


async def test_command_on_a_forgotten_patient_is_failed_precondition_without_the_id(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "forgotten")

    assert await call.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert FORGOTTEN_PATIENT not in await call.details()


async def test_command_on_a_patient_never_registered_names_the_field_never_the_id(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "unregistered")

    code, violations = await _field_violations(call)
    assert await call.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert code == code_pb2.FAILED_PRECONDITION
    assert violations == [("patient_id", "no registered patient has this id")]
    assert FORGOTTEN_PATIENT not in await call.details()


async def test_undecryptable_payload_is_internal(channel: grpc.aio.Channel) -> None:
    call = await _failed_call(channel, "tampered")

    assert await call.code() == grpc.StatusCode.INTERNAL


async def test_a_full_writer_queue_is_resource_exhausted_with_a_retry_delay(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "overloaded")

    status = await rpc_status.aio.from_call(call)
    retry_info = error_details_pb2.RetryInfo()
    assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.details[0].Unpack(retry_info)
    assert retry_info.retry_delay.ToMilliseconds() == 250
    assert "nothing was recorded" in await call.details()


async def test_a_min_version_beyond_the_log_is_out_of_range_on_min_version(
    channel: grpc.aio.Channel,
) -> None:
    call = await _failed_call(channel, "beyond")

    status = await rpc_status.aio.from_call(call)
    bad_request = error_details_pb2.BadRequest()
    assert await call.code() == grpc.StatusCode.OUT_OF_RANGE
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["min_version"]
    assert str(2**63 - 1) not in await call.details()
