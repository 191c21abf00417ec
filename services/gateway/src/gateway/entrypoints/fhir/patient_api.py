"""Patient's interactions: read (``_at`` too), vread of any version, search (``_at`` too), create,
update (demographics, or one of ``Patient.link``: patient_links.py) and ``$match``
(patient_match.py), each done by PatientService's commands and queries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    expected_version,
    fhir_response,
    preference,
)
from gateway.entrypoints.fhir.listing import ListQuery, list_query, page_bundle
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.patient_links import UNLINK_REASON, link_change, wanted_links
from gateway.entrypoints.fhir.patient_match import (
    grade_of,
    match_bundle,
    match_parameters,
    match_search,
)
from gateway.entrypoints.fhir.patient_resource import (
    RESOURCE,
    demographics_from_resource,
    resource_from_record,
)
from gateway.entrypoints.fhir.patient_search import merged, patient_query, searchset
from gateway.entrypoints.fhir.records import (
    RecordSource,
    gathered,
    known_id,
    read,
    route,
    vread,
    written,
)


def _route(rpc: str, interaction: Interaction) -> Route:
    return route("patient", RESOURCE, rpc, interaction)


REGISTER = _route("RegisterPatient", Interaction.CREATE)
UPDATE = _route("UpdateDemographics", Interaction.UPDATE)
LINK = _route("LinkPatients", Interaction.UPDATE)
UNLINK = _route("UnlinkPatients", Interaction.UPDATE)
READ = _route("GetPatient", Interaction.READ)
SEARCH = _route("SearchPatients", Interaction.SEARCH)
# $match candidates' records read at once.
READS_AT_ONCE = 8
MATCH = _route("FindMatches", Interaction.SEARCH)
LIST = _route("ListPatients", Interaction.SEARCH)
# Parameters that make a search a search; without any, it lists every patient.
_CRITERIA = {"name", "family", "given", "birthdate", "identifier", "_at"}


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
        """search-type: SearchPatients (twice for ``name``), a searchset Bundle of one page;
        with no criterion, ListPatients (every patient, by id: registrars)."""
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        params = list(request.query_params.multi_items())
        if not _CRITERIA & {name for name, _ in params}:
            return await self._list(request, caller, list_query(params, {}, strict=strict))
        query = patient_query(params, strict=strict)
        answers = []
        for values in query.requests:
            answer = await self._exchange.call(caller, SEARCH, values, request)
            if answer.status != "OK":
                raise status_error(answer, expression_of=lambda f: _PARAMETER_OF.get(f, f))
            answers.append(answer.body)
        matches = merged(query, answers)
        resources = [resource_from_record(r) for r in matches.window(query)]
        return fhir_response(searchset(query, matches, resources, base_url(request)))

    async def _list(self, request: Request, caller: Caller, query: ListQuery) -> Response:
        answer = await self._exchange.call(caller, LIST, query.values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=lambda f: f"_{f}" if f == "page_token" else f)
        resources = [resource_from_record(r) for r in answer.body.get("patients", [])]
        token = str(answer.body.get("next_page_token", ""))
        return fhir_response(page_bundle(RESOURCE, query, resources, next_token=token,
                                         base=base_url(request)))  # fmt: skip

    async def match(self, request: Request) -> Response:
        """$match: FindMatches on the Parameters' Patient; the candidates the caller may read,
        best first, scored and explained (patient_match.py)."""
        caller = await self._exchange.caller(request)
        body = await self._exchange.resource_body(request)
        patient, only_certain, count = match_parameters(body)
        incoming = demographics_from_resource(patient)
        values = {"demographics": incoming.values, "max_results": count}
        answer = await self._exchange.call(caller, MATCH, values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=incoming.expression_of)
        candidates = [c for c in answer.body.get("candidates", [])
                      if not only_certain or grade_of(c) == "certain"]  # fmt: skip

        async def shown(candidate: Mapping[str, Any]) -> dict[str, Any] | None:
            try:
                candidate_id = str(candidate["patient_id"])
                record = await PATIENTS.record(self._exchange, caller, candidate_id, 0, request)
                return PATIENTS.shown(record)
            except FhirError as unread:
                if unread.status in {403, 404, 410}:
                    return None  # not the caller's to read, or gone since it was scored
                raise

        resources = await gathered([shown(c) for c in candidates], at_once=READS_AT_ONCE)
        entries = [(r, match_search(c)) for r, c in zip(resources, candidates, strict=True)
                   if r is not None]  # fmt: skip
        return fhir_response(match_bundle(entries, base_url(request)))

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
        """update: UpdateDemographics, or LinkPatients/UnlinkPatients when only ``link``
        changes; ``If-Match`` is the expected version (412 if stale)."""
        caller = await self._exchange.caller(request)
        patient_id = known_id(request, RESOURCE)
        resource = await self._exchange.resource_body(request)
        expected = expected_version(request)
        incoming = demographics_from_resource(resource)
        if resource.get("id") != patient_id:
            raise FhirError.of(400, "invalid", "Patient.id must be the id in the URL",
                               expression=("Patient.id",))  # fmt: skip
        wanted = wanted_links(resource, patient_id)
        current = await PATIENTS.record(self._exchange, caller, patient_id, 0, request)
        shown = demographics_from_resource(_present(current)).values
        # A demographics update keeps the links (``link`` absent or as it is); with the
        # demographics as they are, ``link`` is every link the record should have.
        if shown == incoming.values:
            change = link_change(current.get("linked_patient_ids", []), wanted)
            if change is not None:
                if expected is not None and expected != int(current.get("version", 0)):
                    raise FhirError.of(412, "conflict", "the record changed since that version")
                return await self._relink(request, caller, patient_id, change.other_patient_id,
                                          linked=change.linked)  # fmt: skip
        elif "link" in resource:
            link_change(current.get("linked_patient_ids", []), wanted)  # 422 for several
            if wanted != set(current.get("linked_patient_ids", [])):
                raise FhirError.of(422, "processing", "change the demographics or a link, not "
                                   "both", expression=("Patient.link",))  # fmt: skip
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

    async def _relink(self, request: Request, caller: Caller, patient_id: str, other: str, *,
                      linked: bool) -> Response:  # fmt: skip
        """LinkPatients or UnlinkPatients; the answer is this record once the link shows."""
        values: dict[str, Any] = {"request_id": str(uuid.uuid4()), "patient_id": patient_id,
                                  "other_patient_id": other}  # fmt: skip
        if not linked:
            values["reason"] = UNLINK_REASON
        answer = await self._exchange.call(caller, LINK if linked else UNLINK, values, request)
        if answer.status in {"NOT_FOUND", "FAILED_PRECONDITION", "INVALID_ARGUMENT"}:
            # The other record is unknown, forgotten, or already (not) linked: the body's fault.
            raise FhirError.of(422, "processing", f"Patient.link: {answer.message or 'refused'}",
                               expression=("Patient.link",))  # fmt: skip
        if answer.status != "OK":
            raise status_error(answer)
        anchor, version = str(answer.body["anchor_patient_id"]), int(answer.body["version"])
        if anchor != patient_id:
            # Recorded on the other record: this one shows it once that version is read.
            await PATIENTS.record(self._exchange, caller, anchor, version, request)
            record = await PATIENTS.record(self._exchange, caller, patient_id, 0, request)
            version = int(record.get("version", 0))
        done = "linked" if linked else "unlinked"
        return await written(request, self._exchange, caller, source=PATIENTS,
                             record_id=patient_id, version=version, status=200,
                             done=done)  # fmt: skip
