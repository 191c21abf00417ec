"""The gateway's HTTP answers become the same status codes and violations as gRPC's."""

from __future__ import annotations

import json

import httpx
import pytest

from clinical_cli import rpcs
from clinical_cli.errors import CommandError, FieldViolation, UsageError
from clinical_cli.gateway import GatewayApi

pytestmark = pytest.mark.unit


def gateway_answering(status: int, body: object, seen: list[httpx.Request]) -> GatewayApi:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return GatewayApi("http://gateway", "tok", transport=httpx.MockTransport(answer))


def test_path_fields_go_into_the_path_and_the_rest_into_the_body() -> None:
    seen: list[httpx.Request] = []
    api = gateway_answering(200, {"version": "2"}, seen)

    answer = api.call(rpcs.SIGN_ORDER, {"order_id": "o/1", "request_id": "r-1"})

    assert answer == {"version": "2"}
    assert seen[0].method == "POST"
    assert seen[0].url.raw_path == b"/api/v1/orders/o%2F1/sign"
    assert json.loads(seen[0].content) == {"request_id": "r-1"}
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_reads_send_their_fields_as_query_parameters() -> None:
    seen: list[httpx.Request] = []
    api = gateway_answering(200, {"patients": []}, seen)

    api.call(rpcs.SEARCH_PATIENTS, {"family_name": "Smith", "page_size": 5})

    assert seen[0].method == "GET"
    assert dict(seen[0].url.params) == {"family_name": "Smith", "page_size": "5"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"error": "not_found", "message": "order not found"}, "NOT_FOUND"),
        (403, {"error": "permission_denied", "message": "no"}, "PERMISSION_DENIED"),
        (403, {"error": "insufficient_scope", "message": "scope"}, "PERMISSION_DENIED"),
        (401, {"error": "invalid_token", "message": "a valid token"}, "UNAUTHENTICATED"),
        (409, {"error": "failed_precondition", "message": "signed"}, "FAILED_PRECONDITION"),
        (429, {"error": "rate_limited", "message": "slow"}, "RESOURCE_EXHAUSTED"),
        (503, {"error": "unavailable", "message": "down"}, "UNAVAILABLE"),
        (502, "not json at all", "UNKNOWN"),
    ],
)
def test_refusals_carry_the_grpc_status_code_name(status: int, body: object, expected: str) -> None:
    api = gateway_answering(status, body, [])

    with pytest.raises(CommandError) as refused:
        api.call(rpcs.GET_ORDER, {"order_id": "o-1"})

    assert refused.value.status == expected


def test_field_violations_come_from_the_details() -> None:
    body = {"error": "invalid_argument", "message": "invalid request",
            "details": [{"field": "test_code", "description": "is required"}]}  # fmt: skip
    api = gateway_answering(400, body, [])

    with pytest.raises(CommandError) as refused:
        api.call(rpcs.PLACE_ORDER, {"request_id": "r"})

    assert refused.value.violations == [FieldViolation("test_code", "is required")]


def test_rpcs_the_gateway_does_not_route_need_direct() -> None:
    api = gateway_answering(200, {}, [])

    with pytest.raises(UsageError, match="add --direct"):
        api.call(rpcs.FIND_MATCHES, {"patient_id": "p"})
    with pytest.raises(UsageError, match="add --direct"):
        api.call(rpcs.SEARCH_PATIENTS, {"identifier": {"system": "s", "value": "v"}})


def test_an_unreachable_gateway_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    api = GatewayApi("http://gateway:1", "t", transport=httpx.MockTransport(refuse))

    with pytest.raises(CommandError) as failed:
        api.call(rpcs.GET_RESULT, {"result_id": "r-1"})

    assert failed.value.status == "UNAVAILABLE"
    assert failed.value.message == "cannot reach the gateway at http://gateway:1"
