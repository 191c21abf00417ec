"""FHIR R4 Subscription (the Subscriptions R5 Backport IG's profile) <-> notify's subscriptions
(``CreateSubscriptionRequest`` and ``Subscription`` in protobuf's JSON mapping).

``criteria`` is a SubscriptionTopic's canonical URL (`clinical_platform.fhir_notifications`);
the backport's ``backport-filter-criteria`` extensions on ``_criteria`` filter it with
``patient``, ``code`` (LOINC), ``priority`` and (results) ``abnormal``; ``channel.type`` is
``rest-hook`` (``endpoint`` required, ``payload`` ``application/fhir+json``) or ``websocket``;
``channel._payload``'s ``backport-payload-content`` is ``id-only`` (default) or
``full-resource`` (``empty`` is refused: a notification without ids tells nothing here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B.subscription import Subscription

from clinical_platform.fhir_notifications import (
    CHANNEL_TYPE,
    CHANNEL_TYPE_SYSTEM,
    EMPTY,
    FILTER_CRITERIA,
    FULL_RESOURCE,
    ID_ONLY,
    PAYLOAD_CONTENT,
    SUBSCRIPTION_PROFILE,
    TOPIC_BY_URL,
    TopicInfo,
    topic_of,
)
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.validation import validated

RESOURCE = "Subscription"
FHIR_JSON = "application/fhir+json"
# The extension's URL, not a secret.
WEBHOOK_SECRET = "urn:clinical-platform:fhir:StructureDefinition:webhook-secret"  # noqa: S105
_LOINC = "http://loinc.org|"
_CONTENT = {ID_ONLY: "CONTENT_ID_ONLY", FULL_RESOURCE: "CONTENT_FULL"}
_TOPIC_ENUM = {"order.signed": "TOPIC_ORDER_SIGNED", "order.cancelled": "TOPIC_ORDER_CANCELLED",
               "result.posted": "TOPIC_RESULT_POSTED",
               "result.amended": "TOPIC_RESULT_AMENDED"}  # fmt: skip
_NOTIFY_TOPIC = {enum: topic for topic, enum in _TOPIC_ENUM.items()}
_ACCEPTED = {"resourceType", "id", "meta", "text", "status", "reason", "criteria",
             "criteria__ext", "channel", "end", "extension"}  # fmt: skip


def _refuse(status: int, code: str, diagnostics: str, path: str) -> FhirError:
    return FhirError.of(status, code, diagnostics, expression=(f"{RESOURCE}.{path}",))


def subscription_request(resource: Mapping[str, Any]) -> dict[str, Any]:
    """CreateSubscriptionRequest's values (no request id) of a new Subscription; FhirError 400
    for an invalid resource, 422 for one notify cannot serve."""
    model = validated(Subscription, resource)
    subscription = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    topic = TOPIC_BY_URL.get(model.criteria or "")
    if topic is None:
        raise _refuse(422, "not-supported", "criteria must be a SubscriptionTopic's canonical "
                      "URL (see CapabilityStatement)", "criteria")  # fmt: skip
    channel = subscription["channel"]
    kind = channel.get("type")
    if kind not in {"rest-hook", "websocket"}:
        raise _refuse(422, "not-supported", "channel.type must be rest-hook or websocket",
                      "channel.type")  # fmt: skip
    if channel.get("header"):
        raise _refuse(422, "not-supported", "channel.header is not supported: notifications "
                      "are signed (Standard Webhooks)", "channel.header")  # fmt: skip
    payload = channel.get("payload")
    if payload not in (None, FHIR_JSON):
        raise _refuse(422, "not-supported", f"channel.payload must be {FHIR_JSON}",
                      "channel.payload")  # fmt: skip
    content = _payload_content(channel)
    values: dict[str, Any] = {
        "topics": [_TOPIC_ENUM[topic.notify_topic]],
        "filter": _filter(subscription.get("_criteria", {}), topic),
        "content": _CONTENT[content],
        "payload_format": "PAYLOAD_FORMAT_FHIR_R4_BACKPORT",
    }
    if kind == "rest-hook":
        endpoint = channel.get("endpoint")
        if not endpoint:
            raise _refuse(400, "required", "channel.endpoint is required for rest-hook",
                          "channel.endpoint")  # fmt: skip
        values["webhook"] = {"url": endpoint}
    elif channel.get("endpoint"):
        raise _refuse(400, "invalid", "a websocket channel has no endpoint: bind with "
                      "$get-ws-binding-token", "channel.endpoint")  # fmt: skip
    return values


def _payload_content(channel: Mapping[str, Any]) -> str:
    for extension in channel.get("_payload", {}).get("extension", ()):
        if extension.get("url") == PAYLOAD_CONTENT:
            content = str(extension.get("valueCode", ""))
            if content == EMPTY:
                raise _refuse(422, "not-supported", "payload content empty is not offered: "
                              "use id-only or full-resource", "channel.payload")  # fmt: skip
            if content not in _CONTENT:
                raise _refuse(400, "code-invalid", "payload content must be id-only or "
                              "full-resource", "channel.payload")  # fmt: skip
            return content
    return ID_ONLY


def _filter(criteria: Mapping[str, Any], topic: TopicInfo) -> dict[str, Any]:
    """notify's Filter of the backport-filter-criteria extensions (``patient=Patient/<id>``,
    ``code=http://loinc.org|2345-7``, ``priority=stat``, ``abnormal=true``; a resource type
    and ``?`` before them is accepted: ``ServiceRequest?patient=...``)."""
    found: dict[str, Any] = {}
    filters = [e for e in criteria.get("extension", ()) if e.get("url") == FILTER_CRITERIA]
    for index, extension in enumerate(filters):
        path = f"criteria.extension[{index}]"
        text = str(extension.get("valueString", ""))
        kind, _, query = text.rpartition("?")
        if kind and kind != topic.resource:
            raise _refuse(400, "invalid", f"filters of this topic are on {topic.resource}", path)
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise _refuse(400, "invalid", "a filter reads name=value", path) from None
        for name, value in pairs:
            _add_filter(found, name, value, path)
    return found


def _add_filter(found: dict[str, Any], name: str, value: str, path: str) -> None:
    if name in {"patient", "subject"}:
        found.setdefault("patient_ids", []).append(value.removeprefix("Patient/"))
    elif name == "code":
        found.setdefault("loinc_codes", []).append(value.removeprefix(_LOINC))
    elif name == "priority":
        found.setdefault("priorities", []).append(value)
    elif name == "abnormal" and value in {"true", "false"}:
        found["abnormal_only"] = value == "true"
    else:
        raise _refuse(400, "invalid", "filters are patient, code, priority and abnormal "
                      "(true or false)", path)  # fmt: skip


def resource_from_subscription(
    subscription: Mapping[str, Any], *, channel_type: str, secret: str = ""
) -> dict[str, Any]:
    """The Subscription resource of notify's subscription (a FHIR_R4_BACKPORT one, one topic),
    checked by the R4B model; ``secret`` (the signing secret, shown once) as an extension."""
    topic = topic_of(_NOTIFY_TOPIC[subscription["topics"][0]])
    criteria = [{"url": FILTER_CRITERIA, "valueString": text}
                for text in _criteria_texts(subscription.get("filter", {}))]  # fmt: skip
    content = FULL_RESOURCE if subscription.get("content") == "CONTENT_FULL" else ID_ONLY
    channel: dict[str, Any] = {
        "type": channel_type,
        "payload": FHIR_JSON,
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": content}]},
        "extension": [{"url": CHANNEL_TYPE, "valueCoding": {
            "system": CHANNEL_TYPE_SYSTEM, "code": channel_type}}],
    }  # fmt: skip
    if url := subscription.get("webhook", {}).get("url"):
        channel["endpoint"] = url
    resource: dict[str, Any] = {
        "resourceType": RESOURCE,
        "id": subscription["subscription_id"],
        "meta": {
            "versionId": str(subscription.get("version", 1)),
            "profile": [SUBSCRIPTION_PROFILE],
        },
        "status": "active" if subscription.get("state") == "SUBSCRIPTION_STATE_ACTIVE" else "off",
        "reason": topic.title,
        "criteria": topic.url,
        "channel": channel,
    }
    if criteria:
        resource["_criteria"] = {"extension": criteria}
    if expires := subscription.get("expires_at"):
        resource["end"] = expires
    if secret:
        resource["extension"] = [{"url": WEBHOOK_SECRET, "valueString": secret}]
    checked = Subscription.model_validate(resource)
    return checked.model_dump(mode="json", exclude_none=True, by_alias=True)


def _criteria_texts(event_filter: Mapping[str, Any]) -> list[str]:
    texts = [f"patient=Patient/{p}" for p in event_filter.get("patient_ids", ())]
    texts += [f"code={_LOINC}{c}" for c in event_filter.get("loinc_codes", ())]
    texts += [f"priority={p}" for p in event_filter.get("priorities", ())]
    if event_filter.get("abnormal_only"):
        texts.append("abnormal=true")
    return texts


def topic_of_subscription(subscription: Mapping[str, Any]) -> TopicInfo:
    return topic_of(_NOTIFY_TOPIC[subscription["topics"][0]])
