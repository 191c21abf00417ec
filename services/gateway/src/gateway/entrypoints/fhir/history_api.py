"""``_history`` and Provenance, served from the event log by the audit service's History RPC
(auditors only: the audit service decides; the token needs the resource's read scope, or
Provenance's search scope).

``GET [base]/Patient/<id>/_history`` (and ServiceRequest's) is a ``history`` Bundle of every
version of the *resource* recorded, newest first: an event that changes nothing the resource
shows (``Versioned.unshown``, e.g. Patient's match assessment) is no version of it, though its
Provenance stays searchable; versionIds are the aggregate's versions, so they may skip numbers.
Each entry carries who/when/why (``meta.lastUpdated`` and the `VERSION_PROVENANCE` extension of
``meta``) and, when the caller may read the record too, the version's contents (``resource``),
read through the kind's `RecordSource` with ``version`` (at most `READS_AT_ONCE` at a time).
``GET [base]/Provenance?target=Patient/<id>`` is a searchset of one Provenance per event.

Seam for another resource type: ``Versioned(kind, aggregate_type, source, unshown)`` with its
`RecordSource` (whose read RPC takes ``version``), passed to ``HistoryApi(exchange, served)``;
route ``/<kind>/{id}/_history`` to ``histories.history(kind)`` and its ``vread`` to
`records.vread`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    Handler,
    base_url,
    fhir_response,
    preference,
)
from gateway.entrypoints.fhir.listing import (
    ListQuery,
    given_parameters,
    invalid,
    page_bundle,
    reference_id,
)
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.patient_api import PATIENTS
from gateway.entrypoints.fhir.provenance import (
    history_bundle,
    operation,
    provenance,
    version_of,
)
from gateway.entrypoints.fhir.records import RecordSource, gathered, known_id, route
from gateway.entrypoints.fhir.result_api import REPORTS
from gateway.entrypoints.fhir.service_request_api import ORDERS

# The audit service's largest page; a record's versions are read whole, up to the cap.
_PAGE_SIZE = 1000
MAX_VERSIONS = 10 * _PAGE_SIZE
# Versions' contents read from the record's service at once, per history.
READS_AT_ONCE = 8


@dataclass(frozen=True)
class Versioned:
    """A resource type whose versions are events of one aggregate type on the log."""

    kind: str  # the FHIR resource type, e.g. "Patient"
    aggregate_type: str  # the event envelope's, e.g. "Patient"
    # Where the versions' contents are read (its read RPC takes ``version``); None: no contents.
    source: RecordSource | None = None
    # Event types that change nothing the resource shows: no version of it (Provenance only).
    unshown: frozenset[str] = field(default_factory=frozenset)


# The match assessment and care-team changes show nothing of a Patient: no versions of it.
PATIENT_VERSIONS = Versioned("Patient", "Patient", PATIENTS, frozenset({
    "PatientMatchAssessed", "CareTeamMemberAssigned", "CareTeamMemberEnded",
}))  # fmt: skip
SERVICE_REQUEST_VERSIONS = Versioned("ServiceRequest", "Order", ORDERS)
# A result's versions: posted, then each amendment or correction (every one a revision).
DIAGNOSTIC_REPORT_VERSIONS = Versioned("DiagnosticReport", "LabResult", REPORTS)
_PROVENANCE = route("audit", "Provenance", "History", Interaction.SEARCH)


class HistoryApi:
    """Versions of records, as History answers them, over `FhirExchange`."""

    def __init__(self, exchange: FhirExchange, served: Sequence[Versioned]) -> None:
        self._exchange = exchange
        self._served = {v.kind: v for v in served}

    def history(self, kind: str) -> Handler:
        """history-instance of ``kind``: every version of one record, newest first; 404 if
        none (the token needs ``kind``'s read scope)."""
        versioned = self._served[kind]
        via = route("audit", kind, "History", Interaction.READ)

        async def history(request: Request) -> Response:
            caller = await self._exchange.caller(request)
            record_id = known_id(request, kind)
            changes = [c for c in await self._changes(caller, versioned, record_id, request, via)
                       if c.get("event_type") not in versioned.unshown]  # fmt: skip
            contents = await self._contents(caller, versioned, record_id, changes, request)
            return fhir_response(history_bundle(kind, record_id, changes, base_url(request),
                                                contents))  # fmt: skip

        return history

    async def _contents(self, caller: Caller, versioned: Versioned, record_id: str,
                        changes: Sequence[Mapping[str, Any]], request: Request,
                        ) -> dict[int, dict[str, Any]]:  # fmt: skip
        """Each version's resource by version, as the caller may read it: none when the record's
        service refuses the caller (an auditor reads trails, not records) or the record is
        forgotten (its contents are shredded), none for a deletion."""
        source = versioned.source
        if source is None:
            return {}
        versions = [version_of(c) for c in changes if operation(c) != "DELETE"]

        async def read(version: int) -> dict[str, Any]:
            record = await source.record(self._exchange, caller, record_id, 0, request,
                                         version=version)  # fmt: skip
            return source.shown(record)

        if not versions:
            return {}
        try:
            # The newest first: a refusal (403, 410) shows at once and the rest are not read.
            first = await read(versions[-1])
        except FhirError as refused:
            if refused.status in {403, 404, 410}:
                return {}
            raise
        rest = await gathered([read(v) for v in versions[:-1]], at_once=READS_AT_ONCE)
        return {**dict(zip(versions[:-1], rest, strict=True)), versions[-1]: first}

    async def search_provenance(self, request: Request) -> Response:
        """search-type: ``target=<type>/<id>`` (required), one Provenance per version."""
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        given = given_parameters(list(request.query_params.multi_items()), {"target"},
                                 strict=strict)  # fmt: skip
        kinds = " or ".join(sorted(self._served))
        if "target" not in given:
            raise FhirError.of(400, "required", f"target is required: {kinds}/<id>",
                               expression=("target",))  # fmt: skip
        kind = given["target"].split("/", 1)[0]
        if kind not in self._served:
            raise invalid(f"target: give {kinds}/<id>")
        versioned = self._served[kind]
        record_id = reference_id("target", given["target"], kind)
        changes = await self._changes(caller, versioned, record_id, request, _PROVENANCE)
        resources = [provenance(kind, c) for c in changes]
        query = ListQuery({}, (("target", f"{kind}/{record_id}"),), len(resources) or 1)
        return fhir_response(page_bundle("Provenance", query, resources, next_token="",
                                         base=base_url(request)))  # fmt: skip

    async def _changes(self, caller: Caller, versioned: Versioned, record_id: str,
                       request: Request, via: Route) -> list[Mapping[str, Any]]:  # fmt: skip
        """Every change History reports for the record, oldest first; 404 when there is none."""
        changes: list[Mapping[str, Any]] = []
        values: dict[str, Any] = {"aggregate_id": record_id, "page_size": _PAGE_SIZE}
        while True:
            answer = await self._exchange.call(caller, via, values, request)
            if answer.status != "OK":
                raise status_error(answer)
            changes.extend(c for c in answer.body.get("changes", [])
                           if c.get("aggregate_type") == versioned.aggregate_type)  # fmt: skip
            token = answer.body.get("next_page_token", "")
            if not token:
                break
            if len(changes) >= MAX_VERSIONS:
                raise FhirError.of(422, "too-costly", f"over {MAX_VERSIONS} versions recorded")
            values["page_token"] = token
        if not changes:
            raise FhirError.of(404, "not-found", f"no {versioned.kind} has this id")
        return changes
