"""Reading one record from its service, and answering a write: what every resource's API shares.

A read asks the service for the current version, an exact version (``version``: vread) or the
version current at an instant (``as_of``: ``_at``); the record's ``recorded_at`` (when the
version it shows was recorded) becomes ``meta.lastUpdated`` and ``Last-Modified``.

A write answers with the record read back at the version it made (``Prefer: return=
representation``, the default), nothing (``minimal``) or an informational OperationOutcome
(``OperationOutcome``); ``Location`` names the version, ``ETag`` is ``W/"<versionId>"``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    etag,
    fhir_response,
    information,
    preference,
)
from gateway.entrypoints.fhir.listing import RECORD_ID
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.policy import Operation


def route(service: str, kind: str, rpc: str, interaction: Interaction) -> Route:
    """The RPC of ``service`` that does ``interaction`` on ``kind`` (its SMART scope)."""
    return Route(Operation(rpc, kind, interaction), service)


T = TypeVar("T")
# A versionId the service can hold (uint64; ASCII digits only: "²".isdigit() is true).
_VERSION = re.compile(r"^[0-9]{1,18}$")
# An instant (FHIR's): a date, a time to the second at least, and a zone.
_INSTANT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_INSTANT_FORM = "must be an instant: YYYY-MM-DDThh:mm:ss[.fff] with a zone (Z or +hh:mm)"
_AT_FORM = f"_at {_INSTANT_FORM}"


@dataclass(frozen=True)
class RecordSource:
    """Where a resource's records come from (the read RPC, its id field and its answer's) and
    how one becomes the resource."""

    kind: str  # the FHIR resource type
    read: Route  # e.g. GetOrder
    id_field: str  # e.g. "order_id"
    answer_field: str  # e.g. "order"
    present: Callable[[Mapping[str, Any]], dict[str, Any]]  # FhirError for one not shown
    # The read's refusal meaning "about a patient who was forgotten" (410), if it has one.
    forgotten: str = ""

    async def record(self, exchange: FhirExchange, caller: Caller, record_id: str,
                     min_version: int, request: Request, *, version: int = 0,
                     as_of: str = "") -> Mapping[str, Any]:  # fmt: skip
        """The record at ``min_version`` or later, or exactly at ``version``, or as it stood at
        ``as_of`` (a protobuf JSON Timestamp); FhirError 404 (or the service's) if none."""
        values: dict[str, Any] = {self.id_field: record_id, "min_version": min_version}
        if version:
            values["version"] = version
        if as_of:
            values["as_of"] = as_of
        answer = await exchange.call(caller, self.read, values, request)
        if answer.status == "OUT_OF_RANGE":
            raise FhirError.of(404, "not-found", f"no such version of this {self.kind}")
        if answer.status == "NOT_FOUND" and as_of:
            raise FhirError.of(404, "not-found", f"this {self.kind} was not recorded yet at _at")
        if answer.status == self.forgotten:
            raise FhirError.of(410, "deleted", f"this {self.kind} is about a patient who was "
                               "forgotten (right to erasure)")  # fmt: skip
        if answer.status != "OK":
            raise status_error(answer)
        return dict(answer.body[self.answer_field])

    def shown(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The resource of a record, ``meta.lastUpdated`` from its ``recorded_at``."""
        resource = self.present(record)
        if recorded_at := record.get("recorded_at"):
            resource.setdefault("meta", {})["lastUpdated"] = recorded_at
        return resource


def read_headers(record: Mapping[str, Any]) -> dict[str, str]:
    """``ETag`` (the version) and, when the service says when it was recorded, ``Last-Modified``."""
    headers = {"ETag": etag(record.get("version", 0))}
    if recorded_at := record.get("recorded_at"):
        when = datetime.fromisoformat(_to_micros(str(recorded_at)).replace("Z", "+00:00"))
        headers["Last-Modified"] = format_datetime(when.astimezone(UTC), usegmt=True)
    return headers


def as_of(request: Request) -> str:
    """``_at`` as a protobuf JSON Timestamp (UTC), "" without one; FhirError 400 naming ``_at``
    when it is not one instant with a zone."""
    given = request.query_params.getlist("_at")
    if not given:
        return ""
    if len(given) > 1:
        raise FhirError.of(400, "invalid", _AT_FORM, expression=("_at",))
    return instant(given[0])


def instant(value: str, parameter: str = "_at") -> str:
    """An instant parameter's value (``_at``, ``_since``) as a protobuf JSON Timestamp (UTC);
    FhirError 400 naming ``parameter``."""
    refused = FhirError.of(400, "invalid", f"{parameter} {_INSTANT_FORM}", expression=(parameter,))
    # A "+" of the zone arrives as a space when the caller did not percent-encode it.
    text = value.replace(" ", "+")
    if not _INSTANT.match(text):
        raise refused
    try:
        at = datetime.fromisoformat(_to_micros(text).replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: beyond year 9999 or before 1 in UTC
        raise refused from None
    return at.isoformat().replace("+00:00", "Z")


def _to_micros(text: str) -> str:
    # Python reads 6 fractional digits at most: the rest is below the records' resolution.
    return re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)


async def gathered(reads: Sequence[Awaitable[T]], *, at_once: int) -> list[T]:
    """The results of ``reads`` in order, awaiting at most ``at_once`` at a time."""
    limit = asyncio.Semaphore(at_once)

    async def one(read: Awaitable[T]) -> T:
        async with limit:
            return await read

    return list(await asyncio.gather(*(one(r) for r in reads)))


def known_id(request: Request, kind: str) -> str:
    """The path's id when a record can have it; FhirError 404 otherwise (no call made)."""
    record_id = str(request.path_params["id"])
    if not RECORD_ID.match(record_id):
        raise FhirError.of(404, "not-found", f"no {kind} has this id")
    return record_id


async def written(request: Request, exchange: FhirExchange, caller: Caller, *,
                  source: RecordSource, record_id: str, version: int, status: int, done: str,
                  ) -> Response:  # fmt: skip
    """The answer to a write that made ``version`` of a record, as ``Prefer`` asks."""
    location = f"{base_url(request)}/{source.kind}/{record_id}/_history/{version}"
    headers = {"Location": location, "ETag": etag(version)}
    match preference(request, "return"):
        case "minimal":
            return fhir_response(None, status, headers)
        case "OperationOutcome":
            return fhir_response(information(f"{source.kind} {done}"), status, headers)
    try:
        record = await source.record(exchange, caller, record_id, version, request)
        resource = source.shown(record)
    except FhirError as unread:
        # The change is recorded: say so, never an error for a write that succeeded.
        text = f"{source.kind} {done}; reading it back failed: {unread.issues[0].diagnostics}"
        return fhir_response(information(text), status, headers)
    return fhir_response(resource, status, headers)


async def read(request: Request, exchange: FhirExchange, source: RecordSource) -> Response:
    """read: the record's current version, or with ``_at`` the version current at that instant
    (404 when it was not recorded yet); its version as ``ETag``."""
    at = as_of(request)
    caller = await exchange.caller(request)
    record_id = known_id(request, source.kind)
    record = await source.record(exchange, caller, record_id, 0, request, as_of=at)
    return fhir_response(source.shown(record), headers=read_headers(record))


async def vread(request: Request, exchange: FhirExchange, source: RecordSource) -> Response:
    """vread: any version recorded (404 for one beyond the current)."""
    caller = await exchange.caller(request)
    record_id = known_id(request, source.kind)
    wanted = wanted_version(request, source.kind)
    record = await source.record(exchange, caller, record_id, 0, request, version=wanted)
    if int(record.get("version", 0)) != wanted:
        # A service that does not read earlier versions yet answers its current one.
        raise FhirError.of(404, "not-found", f"this version of the {source.kind} is not served")
    return fhir_response(source.shown(record), headers=read_headers(record))


def wanted_version(request: Request, kind: str) -> int:
    """The ``vid`` of a vread's path; FhirError 404 when no record can have it."""
    wanted = str(request.path_params["vid"])
    if not _VERSION.match(wanted) or int(wanted) < 1:
        raise FhirError.of(404, "not-found", f"no such version of this {kind}")
    return int(wanted)
