"""DiagnosticReport's and Observation's interactions, each done by ResultService's queries:
read (and ``_at``), search (ListResults) and, for DiagnosticReport, vread of any version (an
amended result's earlier revisions). Results are posted and amended by the laboratory's own
API, not through FHIR.

A page of a search is a page of results (``_count`` counts results, newest first). ``code``,
``date`` (the effective time) and ``status`` are applied by the results service, so pages are
full and a DiagnosticReport search has its total. An Observation search lists the observations
of those results that pass ``code`` and ``category`` (a result of several tests has others),
so its pages may hold more or fewer observations than ``_count``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    fhir_response,
    preference,
)
from gateway.entrypoints.fhir.listing import (
    ListQuery,
    invalid,
    page_bundle,
    patient_reference,
    reference_id,
)
from gateway.entrypoints.fhir.order_result_search import dated_query, loinc_code, one_of, token
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.records import (
    RecordSource,
    as_of,
    read,
    read_headers,
    route,
    vread,
    wanted_version,
)
from gateway.entrypoints.fhir.result_resources import (
    OBSERVATION_ID,
    observation_from_result,
    observations_from_result,
    report_from_result,
)

REPORT, OBSERVATION = "DiagnosticReport", "Observation"


def _route(rpc: str, resource: str, interaction: Interaction) -> Route:
    return route("results", resource, rpc, interaction)


# The results service refuses a forgotten patient's result with FAILED_PRECONDITION.
REPORTS = RecordSource(REPORT, _route("GetResult", REPORT, Interaction.READ), "result_id",
                       "result", report_from_result, forgotten="FAILED_PRECONDITION")  # fmt: skip
# An Observation is read from its result (never shown whole: `ResultApi.read_observation`).
OBSERVATIONS = RecordSource(OBSERVATION, _route("GetResult", OBSERVATION, Interaction.READ),
                            "result_id", "result", report_from_result,
                            forgotten="FAILED_PRECONDITION")  # fmt: skip
_SEARCH = {kind: _route("ListResults", kind, Interaction.SEARCH) for kind in (REPORT, OBSERVATION)}


def _based_on(value: str) -> Mapping[str, Any]:
    return {"order_id": reference_id("based-on", value, "ServiceRequest")}


# The statuses results are recorded in, as ListResults' enum names.
STATUSES = {"final": "RESULT_STATUS_FINAL", "amended": "RESULT_STATUS_AMENDED",
            "corrected": "RESULT_STATUS_CORRECTED"}  # fmt: skip
_COMMON = {"patient": patient_reference("patient"), "subject": patient_reference("subject"),
           "based-on": _based_on, "status": one_of("status", "statuses", STATUSES)}  # fmt: skip
# DiagnosticReport's code is the report's; Observation's any of the result's observations'.
CRITERIA = {REPORT: {**_COMMON, "code": loinc_code("code", "report_codes")},
            OBSERVATION: {**_COMMON, "code": loinc_code("code", "codes")}}  # fmt: skip
# The observations of a matching result that pass these are listed (the gateway's filters).
FILTERS = ("code", "category")
# ``date`` (when the observations were made) as ListResults' window.
EFFECTIVE = ("effective_from", "effective_to")
# ListResults' fields, as the search parameters that set them.
_PARAMETER_OF = {"patient_id": "patient", "order_id": "based-on", "page_size": "_count",
                 "page_token": "_page_token", "codes": "code", "report_codes": "code",
                 "statuses": "status", "effective_from": "date",
                 "effective_to": "date"}  # fmt: skip


class ResultApi:
    """DiagnosticReport's and Observation's interactions over `FhirExchange`."""

    def __init__(self, exchange: FhirExchange) -> None:
        self._exchange = exchange

    async def read_report(self, request: Request) -> Response:
        """read: GetResult, as its DiagnosticReport."""
        return await read(request, self._exchange, REPORTS)

    async def vread_report(self, request: Request) -> Response:
        """vread: any version, an amended result's earlier revisions included."""
        return await vread(request, self._exchange, REPORTS)

    async def read_observation(self, request: Request) -> Response:
        """read: GetResult, its observation at the id's position (``_at``: in the version of
        the result current then)."""
        return await self._observation(request, as_of=as_of(request))

    async def vread_observation(self, request: Request) -> Response:
        """vread: an Observation's versions are its result's; the observation at the id's
        position in that version's set."""
        return await self._observation(request, version=wanted_version(request, OBSERVATION))

    async def _observation(self, request: Request, *, version: int = 0,
                           as_of: str = "") -> Response:  # fmt: skip
        caller = await self._exchange.caller(request)
        known = OBSERVATION_ID.match(str(request.path_params["id"]))
        if not known:
            raise FhirError.of(404, "not-found", "no Observation has this id")
        result = await OBSERVATIONS.record(self._exchange, caller, known[1], 0, request,
                                           version=version, as_of=as_of)  # fmt: skip
        position = int(known[2])
        if position > len(result.get("observations", ())):
            raise FhirError.of(404, "not-found", "no Observation has this id")
        resource = observation_from_result(result, position)
        if recorded_at := result.get("recorded_at"):
            resource.setdefault("meta", {})["lastUpdated"] = recorded_at
        return fhir_response(resource, headers=read_headers(result))

    async def search_reports(self, request: Request) -> Response:
        """search-type: ListResults, a DiagnosticReport per result."""
        return await self._search(request, REPORT, lambda r, _: [report_from_result(r)], ())

    async def search_observations(self, request: Request) -> Response:
        """search-type: ListResults, each result's observations that pass the filters."""
        return await self._search(request, OBSERVATION, _observations, FILTERS)

    async def _search(
        self, request: Request, kind: str,
        resources_of: Callable[[Mapping[str, Any], ListQuery], list[dict[str, Any]]],
        filters: Sequence[str],
    ) -> Response:  # fmt: skip
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        params = list(request.query_params.multi_items())
        query = dated_query(params, CRITERIA[kind], dated="date", window=EFFECTIVE,
                            strict=strict, filters=filters)  # fmt: skip
        if {"patient", "subject"} <= dict(query.applied).keys():
            raise invalid("give patient or subject, not both")
        answer = await self._exchange.call(caller, _SEARCH[kind], query.values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=lambda f: _PARAMETER_OF.get(f, f))
        resources = [r for result in answer.body.get("results", ())
                     for r in resources_of(result, query)]  # fmt: skip
        # The service counts results: a report's total, not an observation's.
        total = int(answer.body.get("total", 0)) if kind == REPORT else None
        return fhir_response(page_bundle(
            kind, query, resources, next_token=answer.body.get("next_page_token", ""),
            base=base_url(request), total=total,
        ))  # fmt: skip


def _observations(result: Mapping[str, Any], query: ListQuery) -> list[dict[str, Any]]:
    tokens = {name: token(name, value) for name, value in query.filters.items()}
    return [
        resource for resource in observations_from_result(result)
        if all(_coded(resource[name], *token) for name, token in tokens.items())
    ]  # fmt: skip


def _coded(concepts: Any, system: str | None, code: str) -> bool:
    """True when a CodeableConcept (or any of a list) has a coding of ``code`` in ``system``."""
    codings = [c for concept in (concepts if isinstance(concepts, list) else [concepts])
               for c in concept.get("coding", ())]  # fmt: skip
    return any(
        c.get("code") == code and (system is None or c.get("system", "") == system) for c in codings
    )
