"""A FHIR_R4_BACKPORT subscription's webhook body: an R4 notification Bundle (Subscriptions R5
Backport IG) that validates with the R4B models; a native one keeps today's body."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.servicerequest import ServiceRequest

from notify.domain.errors import InvalidSubscription
from notify.domain.notification import (
    Notification,
    Observation,
    OrderDetails,
    ResultDetails,
)
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    PayloadFormat,
    Subscription,
    Topic,
)
from notify.domain.webhook import WebhookSecret
from notify.entrypoints.messages import webhook_payload

from .conftest import _view

AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
PATIENT, ORDER, RESULT = (
    "0b6c1f0e-5d1e-4f43-9a44-6c1e3f0a7a11",
    "7f1e5c2a-0d4b-4c8e-9e61-2b9c5d7e8f01",
    "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
)


def _subscription(topic: Topic, content: Content, payload_format: PayloadFormat) -> Subscription:
    return Subscription.create(
        subscription_id=uuid4(), owner=Owner("dr-fhir", ("clinician",)),
        topics=[topic], event_filter=Filter(patient_ids=(PATIENT,)), content=content,
        webhook_url="https://example.test/hook", secret=WebhookSecret("vault:v1:x"), at=AT,
        payload_format=payload_format,
    )  # fmt: skip


def _bundle(body: str) -> Bundle:
    bundle = Bundle.model_validate(json.loads(body))
    assert bundle.type == "history"
    return bundle


def _parts(status: Parameters) -> dict[str, object]:
    return {str(p.name): p for p in status.parameter or []}


def test_order_signed_id_only_is_a_history_bundle_with_the_status_first() -> None:
    view = _view(_subscription(Topic.ORDER_SIGNED, Content.ID_ONLY,
                               PayloadFormat.FHIR_R4_BACKPORT))  # fmt: skip
    signed = Notification(view.subscription_id, 3, "order.signed", AT, event_id="e",
                          patient_id=PATIENT, order_id=ORDER, version=2)  # fmt: skip
    body, content_type = webhook_payload(view, signed, AT + timedelta(seconds=1))
    assert content_type == "application/fhir+json"
    bundle = _bundle(body)
    entries = bundle.entry or []
    status = Parameters.model_validate(entries[0].resource.model_dump())  # type: ignore[union-attr]
    parts = _parts(status)
    assert parts["topic"].valueCanonical.endswith("order-signed")  # type: ignore[attr-defined]
    assert parts["type"].valueCode == "event-notification"  # type: ignore[attr-defined]
    event = parts["notification-event"].part  # type: ignore[attr-defined]
    assert event[0].valueString == "3"
    assert event[2].valueReference.reference == f"ServiceRequest/{ORDER}"
    assert entries[1].fullUrl == f"ServiceRequest/{ORDER}"
    assert entries[1].resource is None


def test_full_resource_carries_a_valid_service_request() -> None:
    view = _view(_subscription(Topic.ORDER_SIGNED, Content.FULL, PayloadFormat.FHIR_R4_BACKPORT))
    signed = Notification(
        view.subscription_id, 1, "order.signed", AT, patient_id=PATIENT, order_id=ORDER,
        version=2, order=OrderDetails("2345-7", "Glucose", "urgent", "dr-a", "dr-a", AT),
    )  # fmt: skip
    bundle = _bundle(webhook_payload(view, signed, AT)[0])
    focus = (bundle.entry or [])[1].resource
    assert focus is not None
    order = ServiceRequest.model_validate(focus.model_dump())
    assert (order.status, order.priority, order.code.coding[0].code) == (  # type: ignore[union-attr,index]
        "active", "urgent", "2345-7",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "status"), [("amendment", "amended"), ("correction", "corrected")]
)
def test_an_amended_result_is_a_valid_diagnostic_report(kind: str, status: str) -> None:
    view = _view(_subscription(Topic.RESULT_AMENDED, Content.FULL,
                               PayloadFormat.FHIR_R4_BACKPORT))  # fmt: skip
    observation = Observation("2345-7", "Glucose", quantity=("5.4", "mmol/L"))
    amended = Notification(
        view.subscription_id, 1, "result.amended", AT, patient_id=PATIENT, order_id=ORDER,
        result_id=RESULT, version=2,
        result=ResultDetails((observation,), "lab-1", AT, AT, "lab-1", "typo", kind),
    )  # fmt: skip
    bundle = _bundle(webhook_payload(view, amended, AT)[0])
    report = DiagnosticReport.model_validate((bundle.entry or [])[1].resource.model_dump())  # type: ignore[union-attr]
    assert report.status == status
    assert report.basedOn[0].reference == f"ServiceRequest/{ORDER}"  # type: ignore[index]


def test_a_withheld_notification_keeps_its_number_and_names_no_focus() -> None:
    view = _view(_subscription(Topic.ORDER_SIGNED, Content.ID_ONLY,
                               PayloadFormat.FHIR_R4_BACKPORT))  # fmt: skip
    withheld = Notification(view.subscription_id, 4, "notification.withheld", AT)
    bundle = _bundle(webhook_payload(view, withheld, AT)[0])
    assert len(bundle.entry or []) == 1
    assert "ServiceRequest" not in json.dumps(bundle.model_dump(mode="json"))


def test_a_native_subscription_keeps_todays_body() -> None:
    view = _view(_subscription(Topic.ORDER_SIGNED, Content.ID_ONLY, PayloadFormat.NATIVE))
    signed = Notification(view.subscription_id, 1, "order.signed", AT, order_id=ORDER)
    body, content_type = webhook_payload(view, signed, AT)
    assert content_type == "application/json"
    assert json.loads(body)["data"]["order_id"] == ORDER


def test_a_fhir_subscription_names_one_topic() -> None:
    with pytest.raises(InvalidSubscription):
        Subscription.create(
            subscription_id=uuid4(), owner=Owner("dr", ("clinician",)),
            topics=[Topic.ORDER_SIGNED, Topic.RESULT_POSTED], event_filter=Filter(),
            content=Content.ID_ONLY, webhook_url="", secret=None, at=AT,
            payload_format=PayloadFormat.FHIR_R4_BACKPORT,
        )  # fmt: skip
