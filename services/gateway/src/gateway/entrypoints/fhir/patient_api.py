"""Patient's interactions: read, vread (current version), search, create and update, each done
by PatientService's commands and queries. The service's record has no time of change, so no
``Last-Modified`` or ``meta.lastUpdated`` yet."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    expected_version,
    fhir_response,
    preference,
)
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.patient_resource import (
    RESOURCE,
    demographics_from_resource,
    resource_from_record,
)
from gateway.entrypoints.fhir.patient_search import merged, patient_query, searchset
from gateway.entrypoints.fhir.records import RecordSource, known_id, read, route, vread, written


def _route(rpc: str, interaction: Interaction) -> Route:
    return route("patient", RESOURCE, rpc, interaction)


REGISTER = _route("RegisterPatient", Interaction.CREATE)
UPDATE = _route("UpdateDemographics", Interaction.UPDATE)
READ = _route("GetPatient", Interaction.READ)
SEARCH = _route("SearchPatients", Interaction.SEARCH)


def _present(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Patient of a record; FhirError 410 for a forgotten one."""
    if record.get("forgotten"):
        raise FhirError.of(410, "deleted", "this Patient was forgotten (right to erasure)")
    return resource_from_record(record)


PATIENTS = RecordSource(RESOURCE, READ, "patient_id", "patient", _present)
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
        return await read(request, self._exchange, PATIENTS)

    async def vread(self, request: Request) -> Response:
        """vread: the current version only (``_history`` lists the earlier ones)."""
        return await vread(request, self._exchange, PATIENTS)

    async def create(self, request: Request) -> Response:
        """create: RegisterPatient; 201 with Location and ETag."""
        caller = await self._exchange.caller(request)
        incoming = demographics_from_resource(await self._exchange.resource_body(request))
        values = {"request_id": str(uuid.uuid4()), "demographics": incoming.values}
        answer = await self._exchange.call(caller, REGISTER, values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=incoming.expression_of)
        patient_id, version = str(answer.body["patient_id"]), int(answer.body["version"])
        return await written(request, self._exchange, caller, source=PATIENTS,
                             record_id=patient_id, version=version, status=201,
                             done="created")  # fmt: skip

    async def update(self, request: Request) -> Response:
        """update: UpdateDemographics; ``If-Match`` is the expected version (412 if stale)."""
        caller = await self._exchange.caller(request)
        patient_id = known_id(request, RESOURCE)
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
        return await written(request, self._exchange, caller, source=PATIENTS,
                             record_id=patient_id, version=version, status=200,
                             done="updated")  # fmt: skip
