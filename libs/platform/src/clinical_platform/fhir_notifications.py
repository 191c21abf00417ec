"""FHIR R4 topic-based notifications (the Subscriptions R5 Backport IG) of notify's
notifications: pure rendering, shared by notify (rest-hook bodies) and the gateway (the
websocket channel, ``$status`` and ``$events``).

A notification is notify's ``Notification`` in protobuf's JSON mapping with proto field names.
A notification bundle is a ``history`` Bundle whose first entry is the SubscriptionStatus (in
R4, a ``Parameters`` resource profiled as ``backport-subscription-status``) and whose other
entries are the focus resources: their ids only (``id-only``) or the resource built from what
notify carries (``full-resource``). Nothing here logs: bundles carry PHI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
STATUS_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-status"
NOTIFICATION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription-notification"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription"
PAYLOAD_CONTENT = f"{BACKPORT}/StructureDefinition/backport-payload-content"
FILTER_CRITERIA = f"{BACKPORT}/StructureDefinition/backport-filter-criteria"
CHANNEL_TYPE = f"{BACKPORT}/StructureDefinition/backport-channel-type"
CHANNEL_TYPE_SYSTEM = f"{BACKPORT}/CodeSystem/backport-channel-type"
HEARTBEAT_PERIOD = f"{BACKPORT}/StructureDefinition/backport-heartbeat-period"
TOPIC_BASE = "urn:clinical-platform:fhir:SubscriptionTopic:"
LOINC = "http://loinc.org"

ID_ONLY, FULL_RESOURCE, EMPTY = "id-only", "full-resource", "empty"
PAYLOADS = (ID_ONLY, FULL_RESOURCE)


@dataclass(frozen=True)
class TopicInfo:
    """One SubscriptionTopic: its canonical URL, notify's topic, what it is about."""

    name: str  # e.g. "order-signed"
    notify_topic: str  # e.g. "order.signed"
    resource: str  # the focus resource type
    title: str

    @property
    def url(self) -> str:
        return TOPIC_BASE + self.name


TOPICS = (
    TopicInfo("order-signed", "order.signed", "ServiceRequest", "A laboratory order was signed"),
    TopicInfo(
        "order-cancelled", "order.cancelled", "ServiceRequest", "A laboratory order was cancelled"
    ),
    TopicInfo(
        "result-posted", "result.posted", "DiagnosticReport", "A laboratory result was posted"
    ),
    TopicInfo(
        "result-amended",
        "result.amended",
        "DiagnosticReport",
        "A laboratory result was amended or corrected",
    ),
)
TOPIC_BY_URL = {t.url: t for t in TOPICS}
TOPIC_BY_NOTIFY = {t.notify_topic: t for t in TOPICS}


def topic_of(notify_topic: str) -> TopicInfo:
    """The SubscriptionTopic of one of notify's topics (``order.signed``)."""
    return TOPIC_BY_NOTIFY[notify_topic]


def _string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def _focus(notification: Mapping[str, Any]) -> str:
    """``ServiceRequest/<id>`` or ``DiagnosticReport/<id>``; "" for a withheld one."""
    kind = notification.get("type", "")
    if kind in {"order.signed", "order.cancelled"} and notification.get("order_id"):
        return f"ServiceRequest/{notification['order_id']}"
    if kind in {"result.posted", "result.amended"} and notification.get("result_id"):
        return f"DiagnosticReport/{notification['result_id']}"
    return ""


def subscription_status(
    *,
    subscription_id: str,
    topic: TopicInfo,
    status: str,
    kind: str,
    events_since_start: int,
    notifications: Sequence[Mapping[str, Any]] = (),
    error: str = "",
) -> dict[str, Any]:
    """The backport's SubscriptionStatus (a ``Parameters``): ``kind`` is ``event-notification``,
    ``handshake``, ``heartbeat`` or ``query-status``/``query-event``."""
    parameter: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"Subscription/{subscription_id}"},
        },
        {"name": "topic", "valueCanonical": topic.url},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        _string("events-since-subscription-start", str(events_since_start)),
    ]
    for notification in notifications:
        part: list[dict[str, Any]] = [_string("event-number", str(notification["sequence"]))]
        if occurred := notification.get("occurred_at"):
            part.append({"name": "timestamp", "valueInstant": occurred})
        if focus := _focus(notification):
            part.append({"name": "focus", "valueReference": {"reference": focus}})
        parameter.append({"name": "notification-event", "part": part})
    if error:
        parameter.append({"name": "error", "valueCodeableConcept": {"text": error}})
    return {"resourceType": "Parameters", "id": str(uuid4()),
            "meta": {"profile": [STATUS_PROFILE]}, "parameter": parameter}  # fmt: skip


def notification_bundle(
    *,
    subscription_id: str,
    topic: TopicInfo,
    notifications: Sequence[Mapping[str, Any]],
    events_since_start: int,
    payload: str = ID_ONLY,
    kind: str = "event-notification",
    status: str = "active",
    base_url: str = "",
) -> dict[str, Any]:
    """A ``history`` Bundle: the SubscriptionStatus, then an entry per focus (its resource only
    with ``full-resource``). ``base_url`` (``.../fhir/r4``) makes fullUrls absolute."""
    status_resource = subscription_status(
        subscription_id=subscription_id, topic=topic, status=status, kind=kind,
        events_since_start=events_since_start, notifications=notifications,
    )  # fmt: skip
    entries: list[dict[str, Any]] = [{
        "fullUrl": f"urn:uuid:{status_resource['id']}",
        "resource": status_resource,
        "request": {"method": "GET", "url": f"Subscription/{subscription_id}/$status"},
        "response": {"status": "200"},
    }]  # fmt: skip
    for notification in notifications:
        focus = _focus(notification)
        if not focus or payload == EMPTY:
            continue
        entry: dict[str, Any] = {
            "fullUrl": f"{base_url}/{focus}" if base_url else focus,
            "request": {"method": "PUT", "url": focus},
            "response": {"status": "200"},
        }
        if payload == FULL_RESOURCE and (resource := focus_resource(notification)):
            entry["resource"] = resource
        entries.append(entry)
    return {"resourceType": "Bundle", "id": str(uuid4()), "type": "history",
            "meta": {"profile": [NOTIFICATION_PROFILE]},
            "timestamp": _latest(notifications), "entry": entries}  # fmt: skip


def _latest(notifications: Iterable[Mapping[str, Any]]) -> str | None:
    times = [n["occurred_at"] for n in notifications if n.get("occurred_at")]
    return max(times) if times else None


def focus_resource(notification: Mapping[str, Any]) -> dict[str, Any] | None:
    """The focus as far as a full-content notification tells it: a ServiceRequest (order
    topics) or a DiagnosticReport (result topics); None without the details."""
    if order := notification.get("order"):
        return _service_request(notification, order)
    if result := notification.get("result"):
        return _diagnostic_report(notification, result)
    return None


def _common(notification: Mapping[str, Any], kind: str, record_id: str) -> dict[str, Any]:
    patient = f"Patient/{notification['patient_id']}"
    resource: dict[str, Any] = {"resourceType": kind, "id": record_id,
                                "subject": {"reference": patient}}  # fmt: skip
    if version := notification.get("version"):
        resource["meta"] = {"versionId": str(version)}
    return resource


def _service_request(notification: Mapping[str, Any], order: Mapping[str, Any]) -> dict[str, Any]:
    cancelled = notification.get("type") == "order.cancelled"
    resource = {
        **_common(notification, "ServiceRequest", notification["order_id"]),
        "status": "revoked" if cancelled else "active",
        "intent": "order",
        "code": {"coding": [_coding(order.get("test_code", ""), order.get("test_display", ""))]},
    }
    if priority := order.get("priority"):
        resource["priority"] = priority
    if signed_at := order.get("signed_at"):
        resource["authoredOn"] = signed_at
    return resource


def _diagnostic_report(
    notification: Mapping[str, Any], result: Mapping[str, Any]
) -> dict[str, Any]:
    observations = result.get("observations", ())
    if len(observations) == 1:
        code = _coding(observations[0].get("code", ""), observations[0].get("display", ""))
    else:
        code = {"system": LOINC, "code": "11502-2", "display": "Laboratory report"}
    status = "final"
    if notification.get("type") == "result.amended":
        status = "corrected" if result.get("revision_kind") == "correction" else "amended"
    result_id = notification["result_id"]
    resource: dict[str, Any] = {
        **_common(notification, "DiagnosticReport", result_id),
        "status": status,
        "code": {"coding": [code]},
        "result": [{"reference": f"Observation/{result_id}-{n}"}
                   for n in range(1, len(observations) + 1)],
    }  # fmt: skip
    if order_id := notification.get("order_id"):
        resource["basedOn"] = [{"reference": f"ServiceRequest/{order_id}"}]
    if effective := result.get("effective_at"):
        resource["effectiveDateTime"] = effective
    if issued := result.get("issued_at"):
        resource["issued"] = issued
    return resource


def _coding(code: str, display: str) -> dict[str, str]:
    coding = {"system": LOINC, "code": code}
    if display:
        coding["display"] = display
    return coding
