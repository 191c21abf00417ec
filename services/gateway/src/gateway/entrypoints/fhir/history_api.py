"""``_history`` and Provenance, served from the event log by the audit service's History RPC
(auditors only: the audit service decides; the token needs the resource's read scope, or
Provenance's search scope).

``GET [base]/Patient/<id>/_history`` (and ServiceRequest's, DiagnosticReport's) is a
``history`` Bundle of every version of the *resource* recorded, newest first: an event that
changes nothing the resource shows (``Versioned.unshown``, e.g. Patient's match assessment) is
no version of it, though its Provenance stays searchable; versionIds are the aggregate's
versions, so they may skip numbers. ``GET [base]/Patient/_history`` (type level) holds the
versions of every record of the type, newest first, a page of ``_count`` at a time (History by
``aggregate_type``, newest first); both take ``_since``, and an instance's is paged too when
``_count`` or ``_page_token`` is given (history_pages.py).
Each entry carries who/when/why (``meta.lastUpdated`` and the `VERSION_PROVENANCE` extension of
``meta``) and, when the caller may read the record too, the version's contents (``resource``),
read through the kind's `RecordSource` with ``version`` (at most `READS_AT_ONCE` at a time).
``GET [base]/Provenance?target=Patient/<id>`` is a searchset of one Provenance per event.

Seam for another resource type: ``Versioned(kind, aggregate_type, source, unshown)`` with its
`RecordSource` (whose read RPC takes ``version``), passed to ``HistoryApi(exchange, served)``;
route ``/<kind>/{id}/_history`` to ``histories.history(kind)``, ``/<kind>/_history`` to
``histories.history_type(kind)`` and its ``vread`` to `records.vread`.
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
from gateway.entrypoints.fhir.history_pages import HistoryPage, history_page
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
    newest_first,
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
# History calls for one page of a history at most (the rest after the next link).
ASKS_PER_PAGE = 5


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
        """history-instance of ``kind``: every version of one record, newest first (a page of
        ``_count`` with ``_count`` or ``_page_token``), ``_since`` the changes recorded at or
        after it; 404 if none was ever recorded (the token needs ``kind``'s read scope)."""
        versioned = self._served[kind]
        via = route("audit", kind, "History", Interaction.READ)

        async def history(request: Request) -> Response:
            caller = await self._exchange.caller(request)
            record_id = known_id(request, kind)
            page = _page_of(request)
            if page.paged:
                subject = {"aggregate_id": record_id}
                changes, next_token = await self._page(caller, versioned, subject, page, request,
                                                       via=via)  # fmt: skip
            else:
                recorded = await self._changes(caller, versioned, record_id, request, via,
                                               window=page.window())  # fmt: skip
                changes, next_token = newest_first(_shown(versioned, recorded)), ""
            if not changes and (page.since or page.page_token):
                await self._changes(caller, versioned, record_id, request, via)  # 404 if none
            elif not changes:
                raise FhirError.of(404, "not-found", f"no {kind} has this id")
            return await self._answer(caller, versioned, changes, request,
                                      page=page, path=f"{kind}/{record_id}/_history",
                                      next_token=next_token)  # fmt: skip

        return history

    def history_type(self, kind: str) -> Handler:
        """history-type of ``kind``: the versions of every record of it, newest first, a page
        of ``_count`` at a time, ``_since`` the changes recorded at or after it (the token
        needs ``kind``'s search scope)."""
        versioned = self._served[kind]
        via = route("audit", kind, "History", Interaction.SEARCH)

        async def history(request: Request) -> Response:
            caller = await self._exchange.caller(request)
            page = _page_of(request)
            subject = {"aggregate_type": versioned.aggregate_type}
            changes, next_token = await self._page(caller, versioned, subject, page, request,
                                                   via=via)  # fmt: skip
            return await self._answer(caller, versioned, changes, request, page=page,
                                      path=f"{kind}/_history", next_token=next_token)  # fmt: skip

        return history

    async def _answer(self, caller: Caller, versioned: Versioned,
                      changes: Sequence[Mapping[str, Any]], request: Request, *,
                      page: HistoryPage, path: str, next_token: str) -> Response:  # fmt: skip
        """The ``history`` Bundle of ``changes`` (newest first) at ``path``, with the versions'
        contents the caller may read and the page's links."""
        contents = await self._contents(caller, versioned, changes, request)
        base = base_url(request)
        total = len(changes) if not (next_token or page.page_token) else None
        return fhir_response(history_bundle(versioned.kind, changes, base, contents,
                                            links=page.links(f"{base}/{path}", next_token),
                                            total=total))  # fmt: skip

    async def _page(self, caller: Caller, versioned: Versioned, subject: Mapping[str, str],
                    page: HistoryPage, request: Request, *, via: Route,
                    ) -> tuple[list[Mapping[str, Any]], str]:  # fmt: skip
        """Up to ``page.count`` versions of the resource, newest first, and History's token of
        what follows ("" for nothing): History is asked again for what the changes that are no
        versions (``unshown``) left short, up to `ASKS_PER_PAGE` times."""
        shown: list[Mapping[str, Any]] = []
        token = page.page_token
        for _ in range(ASKS_PER_PAGE):
            values: dict[str, Any] = {**subject, **page.window(), "newest_first": True,
                                      "page_size": page.count - len(shown)}  # fmt: skip
            if token:
                values["page_token"] = token
            answer = await self._exchange.call(caller, via, values, request)
            if answer.status != "OK":
                raise status_error(answer)
            shown.extend(_shown(versioned, answer.body.get("changes", [])))
            token = str(answer.body.get("next_page_token", ""))
            if not token or len(shown) >= page.count:
                break
        return shown, token

    async def _contents(self, caller: Caller, versioned: Versioned,
                        changes: Sequence[Mapping[str, Any]], request: Request,
                        ) -> dict[tuple[str, int], dict[str, Any]]:  # fmt: skip
        """Each version's resource by record id and version, as the caller may read it: none
        of a record whose service refuses the caller (an auditor reads trails, not records) or
        that is forgotten (its contents are shredded), none for a deletion. A record's newest
        version is read first: a refusal (403, 404, 410) shows at once and the rest of that
        record's are not read."""
        source = versioned.source
        if source is None:
            return {}
        versions: dict[str, list[int]] = {}
        for change in changes:
            if operation(change) != "DELETE":
                versions.setdefault(str(change["aggregate_id"]), []).append(version_of(change))

        async def read(record_id: str, version: int) -> dict[str, Any] | None:
            try:
                record = await source.record(self._exchange, caller, record_id, 0, request,
                                             version=version)  # fmt: skip
            except FhirError as refused:
                if refused.status in {403, 404, 410}:
                    return None
                raise
            return source.shown(record)

        newest = {record_id: max(found) for record_id, found in versions.items()}
        firsts = await gathered([read(r, v) for r, v in newest.items()], at_once=READS_AT_ONCE)
        readable = {r for r, first in zip(newest, firsts, strict=True) if first is not None}
        rest = [(r, v) for r in readable for v in versions[r] if v != newest[r]]
        others = await gathered([read(r, v) for r, v in rest], at_once=READS_AT_ONCE)
        read_back = zip([*newest.items(), *rest], [*firsts, *others], strict=True)
        return {key: resource for key, resource in read_back if resource is not None}

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
                       request: Request, via: Route, *, window: Mapping[str, Any] | None = None,
                       ) -> list[Mapping[str, Any]]:  # fmt: skip
        """Every change History reports for the record (in ``window``: History's ``recorded``,
        when given), oldest first; 404 when the record has none at all."""
        changes: list[Mapping[str, Any]] = []
        values: dict[str, Any] = {"aggregate_id": record_id, "page_size": _PAGE_SIZE,
                                  **(window or {})}  # fmt: skip
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
        if not changes and not window:
            raise FhirError.of(404, "not-found", f"no {versioned.kind} has this id")
        return changes


def _page_of(request: Request) -> HistoryPage:
    strict = preference(request, "handling") == "strict"
    return history_page(list(request.query_params.multi_items()), strict=strict)


def _shown(versioned: Versioned, changes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The changes that are versions of the resource: of its aggregate type, not ``unshown``."""
    return [c for c in changes if c.get("aggregate_type") == versioned.aggregate_type
            and c.get("event_type") not in versioned.unshown]  # fmt: skip
