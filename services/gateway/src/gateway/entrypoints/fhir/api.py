"""The FHIR R4 routes under ``/fhir/r4``: the CapabilityStatement, Patient (patient service),
ServiceRequest (orders), DiagnosticReport and Observation (results), the ``_history`` of Patient
and ServiceRequest and their Provenance (the audit service's History of the event log) and
AuditEvent (its export of a patient's trail), each interaction done by the services' gRPC
commands and queries; anything else is a 404 or 405 OperationOutcome."""

from __future__ import annotations

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
from gateway.entrypoints.fhir.history_api import (
    PATIENT_VERSIONS,
    SERVICE_REQUEST_VERSIONS,
    HistoryApi,
)
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FhirError
from gateway.entrypoints.fhir.patient_api import PatientApi
from gateway.entrypoints.fhir.result_api import ResultApi
from gateway.entrypoints.fhir.service_request_api import ServiceRequestApi

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _unknown(_: Request) -> Response:
    raise FhirError.of(404, "not-supported", "this resource type or operation is not served")


def fhir_routes(app: GatewayApp, *, max_body_bytes: int) -> list[StarletteRoute]:
    """The FHIR API's routes, for the gateway's Starlette application."""
    exchange = FhirExchange(app, max_body_bytes=max_body_bytes)
    patients, orders, results = (
        PatientApi(exchange),
        ServiceRequestApi(exchange),
        ResultApi(exchange),
    )
    histories = HistoryApi(exchange, (PATIENT_VERSIONS, SERVICE_REQUEST_VERSIONS))
    audit_events = AuditEventApi(exchange)
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
        ("/Patient/{id}/_history", {"GET": histories.history("Patient")}),
        ("/Patient/{id}/_history/{vid}", {"GET": patients.vread}),
        ("/ServiceRequest", {"GET": orders.search, "POST": orders.create}),
        ("/ServiceRequest/{id}", {"GET": orders.read, "PUT": orders.update}),
        ("/ServiceRequest/{id}/_history", {"GET": histories.history("ServiceRequest")}),
        ("/ServiceRequest/{id}/_history/{vid}", {"GET": orders.vread}),
        ("/ServiceRequest/{id}/$sign", {"POST": orders.sign}),
        ("/DiagnosticReport", {"GET": results.search_reports}),
        ("/DiagnosticReport/{id}", {"GET": results.read_report}),
        ("/DiagnosticReport/{id}/_history/{vid}", {"GET": results.vread_report}),
        ("/Observation", {"GET": results.search_observations}),
        ("/Observation/{id}", {"GET": results.read_observation}),
        ("/Provenance", {"GET": histories.search_provenance}),
        ("/AuditEvent", {"GET": audit_events.search}),
        ("/{rest:path}", dict.fromkeys(_METHODS, _unknown)),
    )
    return [
        StarletteRoute(BASE_PATH + path, endpoint(BASE_PATH + path, handlers), methods=_METHODS)
        for path, handlers in table
    ]
