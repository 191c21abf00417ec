"""The FHIR R4 routes under ``/fhir/r4``: the CapabilityStatement and Patient's read, vread,
search, create and update, each done by PatientService's commands and queries.

A write answers with the record read back at the version it made (``Prefer: return=
representation``, the default), nothing (``minimal``) or an informational OperationOutcome
(``OperationOutcome``); ``ETag`` is the version, ``W/"<versionId>"``. The service's record has no
time of change, so no ``Last-Modified`` or ``meta.lastUpdated`` yet.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from gateway.application import GatewayApp, Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    Handler,
    base_url,
    endpoint,
    etag,
    expected_version,
    fhir_response,
    information,
    preference,
)
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FhirError, status_error
from gateway.entrypoints.fhir.patient_resource import (
    RESOURCE,
    demographics_from_resource,
    resource_from_record,
)
from gateway.entrypoints.fhir.patient_search import merged, patient_query, searchset
from gateway.policy import Operation

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# A versionId the service can hold (uint64; ASCII digits only: "²".isdigit() is true).
_VERSION = re.compile(r"^[0-9]{1,18}$")
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _route(rpc: str, interaction: Interaction) -> Route:
    return Route(Operation(rpc, RESOURCE, interaction), "patient")


REGISTER = _route("RegisterPatient", Interaction.CREATE)
UPDATE = _route("UpdateDemographics", Interaction.UPDATE)
READ = _route("GetPatient", Interaction.READ)
SEARCH = _route("SearchPatients", Interaction.SEARCH)
# Search parameters the service names by its own field.
_PARAMETER_OF = {"family_name": "family", "given_name": "given", "birth_date": "birthdate"}


class PatientApi:
    """Patient's interactions over `FhirExchange`."""

    def __init__(self, exchange: FhirExchange) -> None:
        self._exchange = exchange

    async def search(self, request: Request) -> Response:
        """search-type: SearchPatients (twice for ``name``), a searchset Bundle of one page."""
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        query = patient_query(list(request.query_params.multi_items()), strict=strict)
        answers = []
        for values in query.requests:
            answer = await self._exchange.call(caller, SEARCH, values, request)
            if answer.status != "OK":
                raise status_error(answer, expression_of=lambda f: _PARAMETER_OF.get(f, f))
            answers.append(answer.body.get("patients", []))
        matches = merged(query, answers)
        resources = [resource_from_record(r) for r in matches.window(query)]
        return fhir_response(searchset(query, matches, resources, base_url(request)))

    async def read(self, request: Request) -> Response:
        """read: GetPatient; 410 for a forgotten record."""
        caller = await self._exchange.caller(request)
        record = await self._record(caller, _known_id(request), 0, request)
        return _representation(record, 200)

    async def vread(self, request: Request) -> Response:
        """vread: the current version only, until the event log serves ``_history``."""
        caller = await self._exchange.caller(request)
        patient_id = _known_id(request)
        wanted = request.path_params["vid"]
        if not _VERSION.match(wanted) or int(wanted) < 1:
            raise FhirError.of(404, "not-found", "no such version of this Patient")
        record = await self._record(caller, patient_id, int(wanted), request)
        if int(record.get("version", 0)) != int(wanted):
            raise FhirError.of(
                404, "not-found", "only the current version of a Patient is served; earlier "
                "versions (_history) are not implemented yet",
            )  # fmt: skip
        return _representation(record, 200)

    async def create(self, request: Request) -> Response:
        """create: RegisterPatient; 201 with Location and ETag."""
        caller = await self._exchange.caller(request)
        incoming = demographics_from_resource(await self._exchange.resource_body(request))
        values = {"request_id": str(uuid.uuid4()), "demographics": incoming.values}
        answer = await self._exchange.call(caller, REGISTER, values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=incoming.expression_of)
        patient_id, version = str(answer.body["patient_id"]), int(answer.body["version"])
        return await self._written(
            request, caller, patient_id=patient_id, version=version, status=201, done="created"
        )

    async def update(self, request: Request) -> Response:
        """update: UpdateDemographics; ``If-Match`` is the expected version (412 if stale)."""
        caller = await self._exchange.caller(request)
        patient_id = _known_id(request)
        resource = await self._exchange.resource_body(request)
        expected = expected_version(request)
        incoming = demographics_from_resource(resource)
        if resource.get("id") != patient_id:
            raise FhirError.of(400, "invalid", "Patient.id must be the id in the URL",
                               expression=("Patient.id",))  # fmt: skip
        values: dict[str, Any] = {"request_id": str(uuid.uuid4()), "patient_id": patient_id,
                                  "demographics": incoming.values}  # fmt: skip
        if expected is not None:
            values["expected_version"] = expected
        answer = await self._exchange.call(caller, UPDATE, values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=incoming.expression_of,
                               version_precondition=expected is not None)  # fmt: skip
        version = int(answer.body["version"])
        return await self._written(
            request, caller, patient_id=patient_id, version=version, status=200, done="updated"
        )

    async def _record(
        self, caller: Caller, patient_id: str, min_version: int, request: Request
    ) -> Mapping[str, Any]:
        values = {"patient_id": patient_id, "min_version": min_version}
        answer = await self._exchange.call(caller, READ, values, request)
        if answer.status == "OUT_OF_RANGE":
            raise FhirError.of(404, "not-found", "no such version of this Patient")
        if answer.status != "OK":
            raise status_error(answer)
        return dict(answer.body["patient"])

    async def _written(self, request: Request, caller: Caller, *, patient_id: str, version: int,
                       status: int, done: str) -> Response:  # fmt: skip
        location = f"{base_url(request)}/Patient/{patient_id}/_history/{version}"
        headers = {"Location": location, "ETag": etag(version)}
        match preference(request, "return"):
            case "minimal":
                return fhir_response(None, status, headers)
            case "OperationOutcome":
                return fhir_response(information(f"Patient {done}"), status, headers)
        try:
            record = await self._record(caller, patient_id, version, request)
        except FhirError as unread:
            # The change is recorded: say so, never an error for a write that succeeded.
            text = f"Patient {done}; reading it back failed: {unread.issues[0].diagnostics}"
            return fhir_response(information(text), status, headers)
        return _representation(record, status, headers)


def _representation(
    record: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> Response:
    if record.get("forgotten"):
        raise FhirError.of(410, "deleted", "this Patient was forgotten (right to erasure)")
    headers = {"ETag": etag(record.get("version", 0)), **(headers or {})}
    return fhir_response(resource_from_record(record), status, headers)


def _known_id(request: Request) -> str:
    patient_id = str(request.path_params["id"])
    if not _ID.match(patient_id):
        raise FhirError.of(404, "not-found", "no Patient has this id")
    return patient_id


async def _unknown(_: Request) -> Response:
    raise FhirError.of(404, "not-supported", "this resource type or operation is not served")


def fhir_routes(app: GatewayApp, *, max_body_bytes: int) -> list[StarletteRoute]:
    """The FHIR API's routes, for the gateway's Starlette application."""
    patients = PatientApi(FhirExchange(app, max_body_bytes=max_body_bytes))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    software_version = package_version("clinical-gateway")

    async def metadata(request: Request) -> Response:
        return fhir_response(capability_statement(
            base_url(request), software_version=software_version, date=started
        ))  # fmt: skip

    table: tuple[tuple[str, dict[str, Handler]], ...] = (
        ("/metadata", {"GET": metadata}),
        ("/Patient", {"GET": patients.search, "POST": patients.create}),
        ("/Patient/{id}", {"GET": patients.read, "PUT": patients.update}),
        ("/Patient/{id}/_history/{vid}", {"GET": patients.vread}),
        ("/{rest:path}", dict.fromkeys(_METHODS, _unknown)),
    )
    return [
        StarletteRoute(BASE_PATH + path, endpoint(BASE_PATH + path, handlers), methods=_METHODS)
        for path, handlers in table
    ]
