"""The gateway's HTTP routes: each one an interaction on a FHIR resource type, done by one RPC.

Path parameters and (for reads) query parameters become fields of the RPC's request; a
command's JSON body supplies the rest, in protobuf's JSON mapping (field names as in the proto).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.application import Route
from gateway.domain.scopes import Interaction
from gateway.policy import Operation

C, R, U, S = Interaction.CREATE, Interaction.READ, Interaction.UPDATE, Interaction.SEARCH


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    route: Route


# A table row reads best positionally.
def _route(  # noqa: PLR0917
    method: str, path: str, service: str, rpc: str, resource: str,
           interaction: Interaction) -> HttpRoute:  # fmt: skip
    return HttpRoute(
        method, f"/api/v1{path}", Route(Operation(rpc, resource, interaction), service)
    )


ROUTES = (
    _route("POST", "/patients", "patient", "RegisterPatient", "Patient", C),
    _route("GET", "/patients", "patient", "SearchPatients", "Patient", S),
    _route("GET", "/patients/{patient_id}", "patient", "GetPatient", "Patient", R),
    _route("POST", "/orders", "orders", "PlaceOrder", "ServiceRequest", C),
    _route("GET", "/orders", "orders", "ListOrders", "ServiceRequest", S),
    _route("GET", "/orders/{order_id}", "orders", "GetOrder", "ServiceRequest", R),
    _route("POST", "/orders/{order_id}/sign", "orders", "SignOrder", "ServiceRequest", U),
    _route("POST", "/orders/{order_id}/cancel", "orders", "CancelOrder", "ServiceRequest", U),
    _route("POST", "/results", "results", "PostResult", "Observation", C),
    _route("GET", "/results", "results", "ListResults", "Observation", S),
    _route("GET", "/results/{result_id}", "results", "GetResult", "Observation", R),
    _route("POST", "/results/{result_id}/amend", "results", "AmendResult", "Observation", U),
)
