"""FHIR R4 ServiceRequest <-> clinical.orders.v1 Order, and DiagnosticReport / Observation <-
clinical.results.v1 Result: round trips, codes kept with their systems, element paths."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from clinical_testing.strategies import FUZZ
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.servicerequest import ServiceRequest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from clinical.orders.v1 import orders_pb2 as orders
from clinical.results.v1 import results_pb2 as results
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.result_resources import (
    INTERPRETATION,
    OBSERVATION_ID,
    UCUM,
    observations_from_result,
    report_from_result,
)
from gateway.entrypoints.fhir.service_request_resource import (
    LOINC,
    STATUS_REASON,
    expression_of,
    order_from_resource,
    resource_from_order,
    revocation_reason,
)

pytestmark = pytest.mark.unit

NOW = Timestamp(seconds=1_796_000_000)

codes = st.from_regex(r"[0-9]{1,5}-[0-9]", fullmatch=True)
words = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))  # fmt: skip
reasons = st.lists(st.builds(
    orders.ReasonCode,
    system=st.sampled_from([orders.CODE_SYSTEM_ICD10, orders.CODE_SYSTEM_SNOMED_CT]),
    code=st.from_regex(r"[A-Z0-9.]{1,10}", fullmatch=True),
), min_size=1, max_size=3)  # fmt: skip


@st.composite
def placed_orders(draw: st.DrawFn) -> orders.Order:
    order = orders.Order(
        order_id=str(uuid.uuid4()), version=draw(st.integers(1, 10**6)),
        patient_id=str(uuid.uuid4()), test_code=draw(codes), test_display=draw(words),
        priority=draw(st.sampled_from(
            [orders.PRIORITY_ROUTINE, orders.PRIORITY_URGENT, orders.PRIORITY_STAT])),
        reason_codes=draw(reasons), orderer=draw(words),
        status=draw(st.sampled_from([orders.ORDER_STATUS_DRAFT, orders.ORDER_STATUS_SIGNED,
                                     orders.ORDER_STATUS_RESULTED, orders.ORDER_STATUS_CANCELLED])),
    )  # fmt: skip
    order.placed_at.FromDatetime(draw(instants))
    if order.status != orders.ORDER_STATUS_DRAFT:
        order.signature.signer = draw(words)
        order.signature.signed_at.FromDatetime(draw(instants))
        order.signature.mfa = True
    if order.status == orders.ORDER_STATUS_CANCELLED:
        order.cancellation.reason = draw(words)
    return order


def as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@FUZZ
@given(placed_orders())
def test_an_order_read_as_fhir_and_placed_again_keeps_what_it_was_placed_with(
    order: orders.Order,
) -> None:
    resource = resource_from_order(as_json(order))
    ServiceRequest.model_validate(resource)  # what clients receive is valid R4(B)
    assert resource["code"]["coding"][0]["system"] == LOINC
    again = {**resource, "status": "draft"}
    placed = json_format.ParseDict(order_from_resource(again), orders.PlaceOrderRequest())
    assert (placed.patient_id, placed.test_code) == (order.patient_id, order.test_code)
    assert (placed.priority, list(placed.reason_codes)) == (order.priority,
                                                            list(order.reason_codes))  # fmt: skip


@pytest.mark.parametrize(("status", "fhir"), [
    (orders.ORDER_STATUS_DRAFT, "draft"), (orders.ORDER_STATUS_SIGNED, "active"),
    (orders.ORDER_STATUS_RESULTED, "completed"), (orders.ORDER_STATUS_CANCELLED, "revoked"),
])  # fmt: skip
def test_each_order_state_is_a_request_status(
    status: orders.OrderStatus.ValueType, fhir: str
) -> None:
    order = orders.Order(order_id=str(uuid.uuid4()), patient_id=str(uuid.uuid4()),
                         test_code="2345-7", status=status)  # fmt: skip
    assert resource_from_order(as_json(order))["status"] == fhir


def test_a_cancelled_order_carries_its_reason_and_a_signed_one_its_signer() -> None:
    order = orders.Order(order_id=str(uuid.uuid4()), patient_id=str(uuid.uuid4()),
                         test_code="2345-7", status=orders.ORDER_STATUS_CANCELLED,
                         signature=orders.Signature(signer="dr-b", mfa=True, signed_at=NOW),
                         cancellation=orders.Cancellation(reason="ordered twice"))  # fmt: skip
    resource = resource_from_order(as_json(order))
    assert revocation_reason(resource) == "ordered twice"
    signature = next(e for e in resource["extension"] if e["url"] != STATUS_REASON)
    assert signature["valueSignature"]["who"]["identifier"]["value"] == "dr-b"


def new_request(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{uuid.uuid4()}"},
        "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}],
        **elements,
    }  # fmt: skip


@pytest.mark.parametrize(("elements", "status", "path"), [
    ({"status": "active"}, 422, "ServiceRequest.status"),
    ({"status": "signed"}, 400, "ServiceRequest.status"),
    ({"subject": {"reference": "Group/1"}}, 400, "ServiceRequest.subject"),
    ({"code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}}, 400,
     "ServiceRequest.code"),
    ({"priority": "asap"}, 422, "ServiceRequest.priority"),
    ({"reasonCode": [{"text": "tired"}]}, 422, "ServiceRequest.reasonCode[0]"),
    ({"note": [{"text": "fasting"}]}, 422, "ServiceRequest.note"),
    ({"authoredOn": "yesterday"}, 400, "ServiceRequest.authoredOn"),
    ({"resourceType": "Observation"}, 400, "ServiceRequest.resourceType"),
])  # fmt: skip
def test_what_a_draft_order_cannot_be_is_refused_naming_the_element(
    elements: dict[str, Any], status: int, path: str
) -> None:
    with pytest.raises(FhirError) as refused:
        order_from_resource(new_request(**elements))
    assert refused.value.status == status
    assert refused.value.issues[0].expression == (path,)


def test_a_refusal_never_echoes_the_value() -> None:
    canary = f"canary{secrets.token_hex(16)}"
    with pytest.raises(FhirError) as refused:
        order_from_resource(new_request(authoredOn=canary, priority=canary))
    assert canary not in str([issue.as_json() for issue in refused.value.issues])


@pytest.mark.parametrize(("field", "path"), [
    ("patient_id", "ServiceRequest.subject"), ("test_code", "ServiceRequest.code"),
    ("reason_codes", "ServiceRequest.reasonCode"),
    ("reason_codes[1].code", "ServiceRequest.reasonCode[1].coding[0].code"),
    ("orderer", "ServiceRequest"),
])  # fmt: skip
def test_the_services_fields_are_named_as_elements(field: str, path: str) -> None:
    assert expression_of(field) == path


def test_revoking_needs_a_reason() -> None:
    with pytest.raises(FhirError) as refused:
        revocation_reason(new_request(status="revoked"))
    assert refused.value.issues[0].expression == ("ServiceRequest.extension",)


decimals = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=2)
observations = st.one_of(
    st.builds(results.Observation, code=codes, display=words,
              quantity=st.builds(results.Quantity, value=decimals.map(str),
                                 unit=st.sampled_from(["mg/dL", "mmol/L", "10*3/uL"])),
              reference_range=st.builds(results.ReferenceRange, low=decimals.map(str),
                                        high=st.just("") | decimals.map(str)),
              interpretation=st.sampled_from(list(results.Interpretation.values()))),
    st.builds(results.Observation, code=codes,
              coded=st.builds(results.Coding, system=st.just("http://snomed.info/sct"),
                              code=st.from_regex(r"[0-9]{6,9}", fullmatch=True), display=words)),
    st.builds(results.Observation, code=codes, text=words),
)  # fmt: skip


@st.composite
def posted_results(draw: st.DrawFn) -> results.Result:
    result = results.Result(
        result_id=str(uuid.uuid4()), version=draw(st.integers(1, 10**6)),
        order_id=str(uuid.uuid4()), patient_id=str(uuid.uuid4()), performer=draw(words),
        status=draw(st.sampled_from([results.RESULT_STATUS_FINAL, results.RESULT_STATUS_AMENDED,
                                     results.RESULT_STATUS_CORRECTED])),
        observations=draw(st.lists(observations, min_size=1, max_size=4)),
    )  # fmt: skip
    result.effective_at.FromDatetime(draw(instants))
    result.issued_at.FromDatetime(draw(instants))
    return result


@FUZZ
@given(posted_results())
def test_a_result_is_a_valid_report_of_valid_observations_keeping_codes_and_units(
    result: results.Result,
) -> None:
    report = report_from_result(as_json(result))
    DiagnosticReport.model_validate(report)
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{result.order_id}"}]
    mapped = observations_from_result(as_json(result))
    assert [r["reference"] for r in report["result"]] == [f"Observation/{o['id']}" for o in mapped]
    for sent, resource in zip(result.observations, mapped, strict=True):
        Observation.model_validate(resource)
        assert OBSERVATION_ID.match(resource["id"])
        display = {"display": sent.display} if sent.display else {}
        assert resource["code"]["coding"][0] == {"system": LOINC, "code": sent.code, **display}
        assert resource["status"] == report["status"]
        match sent.WhichOneof("value"):
            case "quantity":
                quantity = resource["valueQuantity"]
                assert Decimal(str(quantity["value"])) == Decimal(sent.quantity.value)
                assert (quantity["system"], quantity["code"]) == (UCUM, sent.quantity.unit)
            case "coded":
                assert resource["valueCodeableConcept"]["coding"][0]["code"] == sent.coded.code
            case _:
                assert resource["valueString"] == sent.text


def test_an_interpretation_is_an_hl7_code() -> None:
    result = results.Result(
        result_id=str(uuid.uuid4()), patient_id=str(uuid.uuid4()),
        status=results.RESULT_STATUS_CORRECTED,
        observations=[results.Observation(
            code="2345-7", quantity=results.Quantity(value="30", unit="mg/dL"),
            interpretation=results.INTERPRETATION_CRITICAL_LOW, critical=True,
        )],
    )  # fmt: skip
    (observation,) = observations_from_result(as_json(result))
    assert observation["status"] == "corrected"
    assert observation["interpretation"][0]["coding"][0] == {
        "system": INTERPRETATION, "code": "LL", "display": "Critical low"
    }  # fmt: skip
