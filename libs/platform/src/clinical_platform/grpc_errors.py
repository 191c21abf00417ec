"""Event log failures as gRPC statuses, so every servicer answers them the same way.

Status messages name fields, versions and addresses, never request values: they end up in client
logs, and request values may be patient data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2, message

# Neither package marks itself typed (google.rpc ships .pyi files but no py.typed marker).
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
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
from clinical_platform.reads import InvalidPageToken, ReadModelBehind, VersionNotRecorded
from clinical_platform.security.errors import (
    KeyServiceUnavailableError,
    PatientForgottenError,
    SecurityError,
    UnregisteredPatientError,
)
from clinical_platform.validation import FieldViolation, InvalidRequest

PARTITION_OWNER_METADATA_KEY = "x-partition-owner"
"""Trailing metadata naming the replica to retry at, on UNAVAILABLE from a non-owner."""

MAX_REPORTED_VIOLATIONS = 20
"""The field violations one INVALID_ARGUMENT lists at most."""

StatusTable = Mapping[type[Exception], grpc.StatusCode]
"""A service's own refusals and the status each is answered with (the first match wins)."""


@asynccontextmanager
async def failures_as_status(
    context: grpc.aio.ServicerContext, statuses: StatusTable
) -> AsyncIterator[None]:
    """Answer what the application raises with the status it maps to; re-raise anything else.

    The kernel's failures map the same way in every service: `InvalidRequest` (and every domain
    error that subclasses it) INVALID_ARGUMENT with field violations, a foreign page token
    INVALID_ARGUMENT on ``page_token``, a read model that stayed behind DEADLINE_EXCEEDED, a
    ``min_version`` beyond the log OUT_OF_RANGE with a field violation, event log and key service
    failures as `abort_for` says. ``statuses`` maps the service's own errors;
    their messages must name ids and rules, never request values.
    """
    try:
        yield
    except InvalidRequest as invalid:
        await invalid_argument(context, invalid.violations)
    except InvalidPageToken as invalid:
        await invalid_argument(context, [FieldViolation("page_token", str(invalid))])
    except VersionNotRecorded as beyond:
        violation = FieldViolation(beyond.field, str(beyond))
        await _abort_with_details(
            context, code_pb2.OUT_OF_RANGE, f"{beyond.field} {beyond}", _bad_request([violation])
        )
    except ReadModelBehind:
        await context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "the read model did not reach the requested version in time",
        )
    except (EventLogError, SecurityError) as failure:
        await abort_for(context, failure)
    except Exception as failure:
        for kind, code in statuses.items():
            if isinstance(failure, kind):
                await context.abort(code, str(failure))
        raise


async def abort_for(
    context: grpc.aio.ServicerContext, error: EventLogError | SecurityError
) -> NoReturn:
    """End the RPC with the status code that `error` maps to.

    Rejected events become INVALID_ARGUMENT with ``google.rpc.BadRequest`` details; a lost race
    ABORTED (re-read and retry); anything that a retry elsewhere or later may fix UNAVAILABLE
    (Vault sealed or unreachable included: PHI writes fail closed); a full writer queue
    RESOURCE_EXHAUSTED with ``google.rpc.RetryInfo``; a command on a forgotten patient's data
    FAILED_PRECONDITION, and on a patient never registered FAILED_PRECONDITION with a field
    violation on ``patient_id``.
    """
    if isinstance(error, EventRejectedError):
        await invalid_argument(context, error.violations)
    if isinstance(error, UnregisteredPatientError):
        # The id is the caller's own input: the status names the field, never its value.
        violation = FieldViolation("patient_id", str(error))
        await _abort_with_details(
            context, code_pb2.FAILED_PRECONDITION, str(error), _bad_request([violation])
        )
    if isinstance(error, WriterOverloadedError):
        retry_delay = duration_pb2.Duration()
        retry_delay.FromTimedelta(timedelta(seconds=error.retry_after_s))
        await _abort_with_details(
            context, code_pb2.RESOURCE_EXHAUSTED,
            "too many commands are waiting for the event log; nothing was recorded, retry later",
            error_details_pb2.RetryInfo(retry_delay=retry_delay),
        )  # fmt: skip
    if isinstance(error, SecurityError):
        code, details = _security_status_of(error)
        trailing_metadata: tuple[tuple[str, str], ...] = ()
    else:
        code, details, trailing_metadata = _status_of(error)
    await context.abort(code, details, trailing_metadata=trailing_metadata)
    # grpc is untyped here, so mypy cannot see that abort() always raises.
    raise AssertionError("unreachable")  # pragma: no cover


async def invalid_argument(
    context: grpc.aio.ServicerContext, violations: Sequence[FieldViolation]
) -> NoReturn:
    """End the RPC with INVALID_ARGUMENT and a ``google.rpc.BadRequest`` of `violations`.

    At most `MAX_REPORTED_VIOLATIONS` are listed (the message counts the rest): the details
    travel in a trailer, and a request of 2,000 bad values must not make one too big to send.
    """
    listed = violations[:MAX_REPORTED_VIOLATIONS]
    fields = ", ".join(violation.field for violation in listed)
    if len(violations) > len(listed):
        fields += f" and {len(violations) - len(listed)} more"
    await _abort_with_details(
        context, code_pb2.INVALID_ARGUMENT, f"invalid fields: {fields}", _bad_request(listed)
    )


def _bad_request(violations: Sequence[FieldViolation]) -> message.Message:
    bad_request: message.Message = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=violation.field, description=violation.description
            )
            for violation in violations
        ]
    )
    return bad_request


async def _abort_with_details(
    context: grpc.aio.ServicerContext, code: int, text: str, detail: message.Message
) -> NoReturn:
    """End the RPC with a rich status: ``detail`` (a google.rpc message) in its details."""
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code, message=text, details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable")  # pragma: no cover


def _status_of(error: EventLogError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    match error:
        case ConcurrencyError():
            return (
                grpc.StatusCode.ABORTED,
                f"the aggregate is at version {error.actual_version}, "
                f"the command expected version {error.expected_version}; re-read and retry",
                (),
            )
        case NotPartitionOwnerError():
            return (
                grpc.StatusCode.UNAVAILABLE,
                f"partition {error.partition} is owned by another replica; retry there",
                ((PARTITION_OWNER_METADATA_KEY, error.owner_address),),
            )
        case WriterFencedError():
            return grpc.StatusCode.UNAVAILABLE, f"this replica lost partition {error.partition}", ()
        case EventLogUnavailableError():
            # The append may or may not have landed: a retry with the same request id is safe.
            return grpc.StatusCode.UNAVAILABLE, "the event log did not confirm the append", ()
    return grpc.StatusCode.INTERNAL, "event log failure", ()


def _security_status_of(error: SecurityError) -> tuple[grpc.StatusCode, str]:
    match error:
        case KeyServiceUnavailableError():
            # Nothing was written: the same request may be retried once Vault is back.
            return grpc.StatusCode.UNAVAILABLE, "the key service is unavailable; retry later"
        case PatientForgottenError():
            return grpc.StatusCode.FAILED_PRECONDITION, "the patient's data was erased"
    return grpc.StatusCode.INTERNAL, "patient data could not be protected or read"
