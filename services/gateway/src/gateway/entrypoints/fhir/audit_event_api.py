"""AuditEvent search: a patient's trail (changes and accesses) as the audit service exports it,
in the IHE Basic Audit Log Patterns shape (auditors only: the audit service decides; the token
needs AuditEvent's search scope)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.audit_event_search import audit_event_query
from gateway.entrypoints.fhir.exchange import FhirExchange, base_url, fhir_response, preference
from gateway.entrypoints.fhir.listing import page_bundle
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.records import route

EXPORT = route("audit", "AuditEvent", "ExportAuditEvents", Interaction.SEARCH)


def agent_subjects(event: Mapping[str, Any]) -> set[str]:
    """The subjects of an AuditEvent's agents (the user, whom they acted for)."""
    return {
        str(agent.get("who", {}).get("identifier", {}).get("value", ""))
        for agent in event.get("agent", [])
    }


def audit_event(text: str) -> dict[str, Any]:
    """One AuditEvent of the export, checked by the R4B model; 502 when it is not one."""
    try:
        event = AuditEvent.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        # No cause chained: the model's message quotes the event's values.
        raise FhirError.of(
            502, "exception", "the audit service answered an invalid AuditEvent"
        ) from None
    return event.model_dump(mode="json", exclude_none=True)


class AuditEventApi:
    """AuditEvent's search over `FhirExchange`."""

    def __init__(self, exchange: FhirExchange) -> None:
        self._exchange = exchange

    async def search(self, request: Request) -> Response:
        """search-type: ExportAuditEvents, one page; ``agent`` filters the page."""
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        query = audit_event_query(list(request.query_params.multi_items()), strict=strict)
        answer = await self._exchange.call(caller, EXPORT, query.values, request)
        if answer.status != "OK":
            raise status_error(answer)
        events = [audit_event(text) for text in answer.body.get("audit_events", [])]
        if agent := query.filters.get("agent"):
            events = [e for e in events if agent in agent_subjects(e)]
        return fhir_response(page_bundle("AuditEvent", query, events,
                                         next_token=str(answer.body.get("next_page_token", "")),
                                         base=base_url(request)))  # fmt: skip
