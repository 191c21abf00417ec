"""The OpenAPI document is generated from the route tables and the protos: every route is in
it, its JSON Schemas accept what the gateway really sends and answers, and a FHIR route added
to the table is described without touching the generator."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response

from clinical.orders.v1 import orders_pb2
from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.entrypoints.fhir.api import FhirRoute
from gateway.entrypoints.http import build_http_app
from gateway.entrypoints.openapi import openapi_document
from gateway.entrypoints.routes import ROUTES

from .conftest import AUDIENCES, FakeServices, FakeVerifier

pytestmark = pytest.mark.unit
ISSUER = "https://id.example/realms/clinical"


@pytest.fixture
async def document() -> dict[str, Any]:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier({}), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("20/minute"), tokens=issuer,
        downstream=FakeServices({}), audit=RefusalLog(), audiences=AUDIENCES,
    )  # fmt: skip
    asgi = build_http_app(app, jwks=issuer.jwks(), max_body_bytes=4096, cors_origins=[],
                          oidc_issuer=ISSUER)  # fmt: skip
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        answer = await http.get("/openapi.json")  # no token
    assert answer.status_code == 200
    served: dict[str, Any] = answer.json()
    return served


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, for jsonschema."""
    return {**schema, "components": document["components"]}


def test_every_route_of_both_tables_is_described(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    for row in ROUTES:
        assert row.method.lower() in document["paths"][row.path]
    fhir = {p for p in document["paths"] if p.startswith("/fhir/r4/")}
    assert {"/fhir/r4/metadata", "/fhir/r4/Patient/{id}", "/fhir/r4/ServiceRequest/{id}/$sign",
            "/fhir/r4/Observation"} <= fhir  # fmt: skip
    assert "/fhir/r4/{rest}" not in fhir
    assert set(document["paths"]["/fhir/r4/Patient/{id}"]) == {"get", "put"}
    # The document loads as OpenAPI (schemathesis checks its structure).
    assert schemathesis.openapi.from_dict(document) is not None


def test_schemas_are_valid_and_accept_what_the_gateway_exchanges(
    document: dict[str, Any],
) -> None:
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    order = orders_pb2.Order(order_id="o-1", version=3, patient_id="p-1", test_code="2345-7",
                             priority=orders_pb2.PRIORITY_URGENT,
                             status=orders_pb2.ORDER_STATUS_SIGNED)  # fmt: skip
    order.placed_at.GetCurrentTime()
    answer = json_format.MessageToDict(orders_pb2.GetOrderResponse(order=order),
                                       preserving_proto_field_name=True)  # fmt: skip
    get = document["paths"]["/api/v1/orders/{order_id}"]["get"]
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(answer, resolved(document, schema))
    place = document["paths"]["/api/v1/orders"]["post"]
    body_schema = place["requestBody"]["content"]["application/json"]["schema"]
    body = {
        "patient_id": "p-1",
        "test_code": "2345-7",
        "priority": "PRIORITY_ROUTINE",
        "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
    }
    jsonschema.validate(body, resolved(document, body_schema))
    json_format.ParseDict(body, orders_pb2.PlaceOrderRequest())  # the service's reading of it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"unknown": 1}, resolved(document, body_schema))


def test_path_parameters_are_not_in_the_body_and_errors_are_described(
    document: dict[str, Any],
) -> None:
    sign = document["paths"]["/api/v1/orders/{order_id}/sign"]["post"]
    assert [p["name"] for p in sign["parameters"]] == ["order_id"]
    body = sign["requestBody"]["content"]["application/json"]["schema"]
    assert "order_id" not in body["properties"]
    assert {"400", "401", "403", "404", "409", "413", "429"} <= set(sign["responses"])
    assert sign["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    search = document["paths"]["/fhir/r4/Patient"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"family", "birthdate", "identifier", "_count", "_summary", "_format"} <= names
    outcome = search["responses"]["403"]["content"]["application/fhir+json"]["schema"]
    assert outcome == {"$ref": "#/components/schemas/OperationOutcome"}
    update = document["paths"]["/fhir/r4/Patient/{id}"]["put"]
    assert "412" in update["responses"]
    assert "If-Match" in {p["name"] for p in update["parameters"]}
    for path in ("/fhir/r4/Patient/_history", "/fhir/r4/DiagnosticReport/{id}/_history"):
        history = document["paths"][path]["get"]
        assert history["summary"].startswith("FHIR history-")
        assert {"_since", "_count", "_page_token"} <= {p["name"] for p in history["parameters"]}
        answer = history["responses"]["200"]["content"]["application/fhir+json"]["schema"]
        assert answer["properties"]["resourceType"] == {"enum": ["Bundle"]}
    created = document["paths"]["/fhir/r4/ServiceRequest"]["post"]["responses"]["201"]
    kinds = created["content"]["application/fhir+json"]["schema"]["properties"]["resourceType"]
    assert "ServiceRequest" in kinds["enum"]


def test_oauth2_names_the_providers_endpoints_and_public_routes_need_no_token(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    flows = schemes["oauth2"]["flows"]
    assert flows["authorizationCode"]["tokenUrl"] == f"{ISSUER}/protocol/openid-connect/token"
    assert flows["authorizationCode"]["authorizationUrl"].startswith(ISSUER)
    assert schemes["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/fhir/r4/metadata"]["get"]["security"] == []
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_a_route_added_to_the_fhir_table_is_described() -> None:
    async def handler(_: Request) -> Response:
        return Response()

    routes = [FhirRoute("/fhir/r4/Subscription", {"GET": handler, "POST": handler}),
              FhirRoute("/fhir/r4/Subscription/{id}", {"GET": handler}),
              FhirRoute("/fhir/r4/Patient/$match", {"POST": handler})]  # fmt: skip
    document = openapi_document(routes, (), oidc_issuer=ISSUER)
    assert set(document["paths"]["/fhir/r4/Subscription"]) == {"get", "post"}
    assert set(document["paths"]["/fhir/r4/Subscription/{id}"]) == {"get"}
    match = document["paths"]["/fhir/r4/Patient/$match"]["post"]
    assert "application/fhir+json" in match["requestBody"]["content"]
