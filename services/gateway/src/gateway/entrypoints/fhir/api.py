"""The FHIR R4 routes under ``/fhir/r4``: the CapabilityStatement, Patient (patient service),
ServiceRequest (orders), DiagnosticReport and Observation (results), the ``_history`` of Patient,
ServiceRequest and DiagnosticReport (instance and type level) and their Provenance (the audit
service's History of the event log) and AuditEvent (its export of a patient's trail), each
interaction done by the services' gRPC commands and queries; anything else is a 404 or 405
OperationOutcome. A type's ``_history`` comes before ``<type>/{id}``, which would take it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version as package_version

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from gateway.application import GatewayApp
from gateway.entrypoints.fhir.audit_event_api import AuditEventApi
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    Handler,
    base_url,
    endpoint,
    fhir_response,
)
from gateway.entrypoints.fhir.export_api import ExportApi, Exports
from gateway.entrypoints.fhir.history_api import (
    DIAGNOSTIC_REPORT_VERSIONS,
    PATIENT_VERSIONS,
    SERVICE_REQUEST_VERSIONS,
    HistoryApi,
)
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FhirError
from gateway.entrypoints.fhir.patient_api import PatientApi
from gateway.entrypoints.fhir.result_api import ResultApi
from gateway.entrypoints.fhir.service_request_api import ServiceRequestApi
from gateway.entrypoints.fhir.subscription_api import SubscriptionApi
from gateway.entrypoints.fhir.subscription_tokens import BindingTokens

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _unknown(_: Request) -> Response:
    raise FhirError.of(404, "not-supported", "this resource type or operation is not served")


def fhir_routes(app: GatewayApp, *, max_body_bytes: int, exports: Exports | None = None,
                binding_tokens: BindingTokens | None = None) -> list[StarletteRoute]:  # fmt: skip
    """The FHIR API's routes, for the gateway's Starlette application (``$export`` when
    ``exports`` is given)."""
    exchange = FhirExchange(app, max_body_bytes=max_body_bytes)
    patients, orders, results = (
        PatientApi(exchange),
        ServiceRequestApi(exchange),
        ResultApi(exchange),
    )
    histories = HistoryApi(
        exchange, (PATIENT_VERSIONS, SERVICE_REQUEST_VERSIONS, DIAGNOSTIC_REPORT_VERSIONS)
    )
    audit_events = AuditEventApi(exchange)
    subscriptions = SubscriptionApi(exchange, binding_tokens or BindingTokens())
    bulk = ExportApi(exchange, exports) if exports else None
    started = datetime.now(UTC).isoformat(timespec="seconds")
    software_version = package_version("clinical-gateway")

    async def metadata(request: Request) -> Response:
        return fhir_response(capability_statement(
            base_url(request), software_version=software_version, date=started
        ))  # fmt: skip

    table: tuple[tuple[str, dict[str, Handler]], ...] = (
        ("/metadata", {"GET": metadata}),
        *(bulk_routes(bulk) if bulk else ()),
        ("/Patient", {"GET": patients.search, "POST": patients.create}),
        ("/Patient/$match", {"POST": patients.match}),
        ("/Patient/_history", {"GET": histories.history_type("Patient")}),
        ("/Patient/{id}", {"GET": patients.read, "PUT": patients.update}),
        ("/Patient/{id}/_history", {"GET": histories.history("Patient")}),
        ("/Patient/{id}/_history/{vid}", {"GET": patients.vread}),
        ("/ServiceRequest", {"GET": orders.search, "POST": orders.create}),
        ("/ServiceRequest/_history", {"GET": histories.history_type("ServiceRequest")}),
        ("/ServiceRequest/{id}", {"GET": orders.read, "PUT": orders.update}),
        ("/ServiceRequest/{id}/_history", {"GET": histories.history("ServiceRequest")}),
        ("/ServiceRequest/{id}/_history/{vid}", {"GET": orders.vread}),
        ("/ServiceRequest/{id}/$sign", {"POST": orders.sign}),
        ("/DiagnosticReport", {"GET": results.search_reports}),
        ("/DiagnosticReport/_history", {"GET": histories.history_type("DiagnosticReport")}),
        ("/DiagnosticReport/{id}", {"GET": results.read_report}),
        ("/DiagnosticReport/{id}/_history", {"GET": histories.history("DiagnosticReport")}),
        ("/DiagnosticReport/{id}/_history/{vid}", {"GET": results.vread_report}),
        ("/Observation", {"GET": results.search_observations}),
        ("/Observation/{id}", {"GET": results.read_observation}),
        ("/Observation/{id}/_history/{vid}", {"GET": results.vread_observation}),
        ("/Provenance", {"GET": histories.search_provenance}),
        ("/AuditEvent", {"GET": audit_events.search}),
        ("/Subscription", {"POST": subscriptions.create}),
        ("/Subscription/{id}", {"GET": subscriptions.read, "DELETE": subscriptions.delete}),
        ("/Subscription/{id}/$status", {"GET": subscriptions.status}),
        ("/Subscription/{id}/$events", {"GET": subscriptions.events}),
        (
            "/Subscription/{id}/$get-ws-binding-token",
            {"GET": subscriptions.binding_token, "POST": subscriptions.binding_token},
        ),
        ("/{rest:path}", dict.fromkeys(_METHODS, _unknown)),
    )
    files = [StarletteRoute(BASE_PATH + "/$export-file/{job}/{file}", bulk.file)] if bulk else []
    return [*files, *(FhirRoute(BASE_PATH + path, handlers) for path, handlers in table)]


def bulk_routes(bulk: ExportApi) -> tuple[tuple[str, dict[str, Handler]], ...]:
    """``$export`` at each level (before ``Patient/{id}`` takes ``$export`` for an id) and its
    status; its files are routed apart: NDJSON, whatever ``Accept`` says."""
    return (
        ("/$export", {"GET": bulk.kick_off_system}),
        ("/Patient/$export", {"GET": bulk.kick_off_patients}),
        ("/Group/{id}/$export", {"GET": bulk.kick_off_group}),
        ("/$export-status/{job}", {"GET": bulk.status, "DELETE": bulk.delete}),
    )


class FhirRoute(StarletteRoute):
    """A FHIR path: every method reaches it (one it does not serve is a 405 OperationOutcome);
    ``served`` are the methods it serves (the OpenAPI document describes those)."""

    def __init__(self, path: str, handlers: Mapping[str, Handler]) -> None:
        super().__init__(path, endpoint(path, handlers), methods=_METHODS)
        self.served = tuple(handlers)
