"""Reading one record from its service, and answering a write: what every resource's API shares.

A write answers with the record read back at the version it made (``Prefer: return=
representation``, the default), nothing (``minimal``) or an informational OperationOutcome
(``OperationOutcome``); ``Location`` names the version, ``ETag`` is ``W/"<versionId>"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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


# A versionId the service can hold (uint64; ASCII digits only: "²".isdigit() is true).
_VERSION = re.compile(r"^[0-9]{1,18}$")


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
                     min_version: int, request: Request) -> Mapping[str, Any]:  # fmt: skip
        """The record at ``min_version`` or later; FhirError 404 (or the service's) if none."""
        values = {self.id_field: record_id, "min_version": min_version}
        answer = await exchange.call(caller, self.read, values, request)
        if answer.status == "OUT_OF_RANGE":
            raise FhirError.of(404, "not-found", f"no such version of this {self.kind}")
        if answer.status == self.forgotten:
            raise FhirError.of(410, "deleted", f"this {self.kind} is about a patient who was "
                               "forgotten (right to erasure)")  # fmt: skip
        if answer.status != "OK":
            raise status_error(answer)
        return dict(answer.body[self.answer_field])


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
        resource = source.present(record)
    except FhirError as unread:
        # The change is recorded: say so, never an error for a write that succeeded.
        text = f"{source.kind} {done}; reading it back failed: {unread.issues[0].diagnostics}"
        return fhir_response(information(text), status, headers)
    return fhir_response(resource, status, headers)


async def read(request: Request, exchange: FhirExchange, source: RecordSource) -> Response:
    """read: the record's current version, its version as ``ETag``."""
    caller = await exchange.caller(request)
    record_id = known_id(request, source.kind)
    record = await source.record(exchange, caller, record_id, 0, request)
    headers = {"ETag": etag(record.get("version", 0))}
    return fhir_response(source.present(record), headers=headers)


async def vread(request: Request, exchange: FhirExchange, source: RecordSource) -> Response:
    """vread: the current version only, until a service reads earlier ones (``_history`` lists
    every version, without contents)."""
    caller = await exchange.caller(request)
    record_id = known_id(request, source.kind)
    wanted = wanted_version(request, source.kind)
    record = await source.record(exchange, caller, record_id, wanted, request)
    if int(record.get("version", 0)) != wanted:
        raise FhirError.of(
            404, "not-found", f"only the current version of a {source.kind} is served; the "
            "contents of earlier versions are not (_history lists them)",
        )  # fmt: skip
    return fhir_response(source.present(record), headers={"ETag": etag(wanted)})


def wanted_version(request: Request, kind: str) -> int:
    """The ``vid`` of a vread's path; FhirError 404 when no record can have it."""
    wanted = str(request.path_params["vid"])
    if not _VERSION.match(wanted) or int(wanted) < 1:
        raise FhirError.of(404, "not-found", f"no such version of this {kind}")
    return int(wanted)
