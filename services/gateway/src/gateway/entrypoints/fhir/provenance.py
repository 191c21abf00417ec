"""A record's versions from the event log: each change the audit service's History reports
becomes a Provenance (who, when, why) and an entry of a ``history`` Bundle.

The audit service reports each event's clear envelope (version, times, actor, purpose of use,
event type), never its payload: the versions' contents stay with the owning service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance

from gateway.entrypoints.fhir.exchange import etag

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
# The identity provider's subjects (OIDC ``sub``) and roles, as this platform records them.
SUBJECT_SYSTEM = "urn:clinical-platform:subject"
ROLE_SYSTEM = "urn:clinical-platform:role"
CLIENT_SYSTEM = "urn:clinical-platform:client"
_PURPOSE_PREFIX = "PURPOSE_OF_USE_"
# A version's who/why in its ``meta`` (a history's entries): parts provenance, author, activity,
# role (each of the author's) and reason (the purpose of use, when recorded).
VERSION_PROVENANCE = "urn:clinical-platform:fhir:StructureDefinition:version-provenance"
# Event types that end a record (the version is a deletion in FHIR's terms).
_ENDING = frozenset({"PatientForgotten"})


def version_of(change: Mapping[str, Any]) -> int:
    """The aggregate version a change made (protobuf's JSON writes uint64 as a string)."""
    return int(change.get("aggregate_version", 0))


def operation(change: Mapping[str, Any]) -> str:
    """CREATE, UPDATE or DELETE (v3 DataOperation): what the change did to the record."""
    if change.get("event_type") in _ENDING:
        return "DELETE"
    return "CREATE" if version_of(change) == 1 else "UPDATE"


def purpose_of_use(change: Mapping[str, Any]) -> str | None:
    """The HL7 v3 PurposeOfUse code (TREAT, ETREAT, ...), None when not recorded."""
    name = str(change.get("purpose_of_use", ""))
    code = name.removeprefix(_PURPOSE_PREFIX)
    return code if name.startswith(_PURPOSE_PREFIX) and code != "UNSPECIFIED" else None


def provenance(kind: str, change: Mapping[str, Any]) -> dict[str, Any]:
    """The Provenance of the version of ``kind`` that ``change`` made, checked by the R4B model."""
    version = version_of(change)
    actor = change.get("actor", {})
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
        "who": {"identifier": {"system": SUBJECT_SYSTEM, "value": actor.get("subject", "")}},
    }
    if roles := actor.get("roles"):
        agent["role"] = [{"coding": [{"system": ROLE_SYSTEM, "code": r}]} for r in roles]
    if on_behalf_of := actor.get("on_behalf_of"):
        agent["onBehalfOf"] = {"identifier": {"system": SUBJECT_SYSTEM, "value": on_behalf_of}}
    agents = [agent]
    if client_id := actor.get("client_id"):
        agents.append({
            "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler"}]},
            "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client_id}},
        })  # fmt: skip
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": change["event_id"],
        "target": [{"reference": f"{kind}/{change['aggregate_id']}/_history/{version}"}],
        "recorded": change["recorded_at"],
        "activity": {"coding": [{"system": DATA_OPERATION, "code": operation(change)}],
                     "text": change.get("event_type", "")},
        "agent": agents,
    }  # fmt: skip
    if occurred := change.get("occurred_at"):
        resource["occurredDateTime"] = occurred
    if code := purpose_of_use(change):
        resource["reason"] = [{"coding": [{"system": ACT_REASON, "code": code}]}]
    return Provenance.model_validate(resource).model_dump(mode="json", exclude_none=True)


def version_provenance(change: Mapping[str, Any]) -> dict[str, Any]:
    """Who made a version, why, by which event, and the Provenance that records it: the
    `VERSION_PROVENANCE` extension of the version's ``meta`` in a history."""
    actor = change.get("actor", {})
    parts: list[dict[str, Any]] = [
        {"url": "provenance", "valueReference": {"reference": f"Provenance/{change['event_id']}"}},
        {"url": "author", "valueIdentifier": {"system": SUBJECT_SYSTEM,
                                              "value": actor.get("subject", "")}},
        {"url": "activity", "valueString": change.get("event_type", "")},
    ]  # fmt: skip
    parts.extend({"url": "role", "valueCoding": {"system": ROLE_SYSTEM, "code": r}}
                 for r in actor.get("roles", []))  # fmt: skip
    if code := purpose_of_use(change):
        parts.append({"url": "reason", "valueCoding": {"system": ACT_REASON, "code": code}})
    return {"url": VERSION_PROVENANCE, "extension": parts}


def newest_first(changes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record's changes, its newest version first."""
    return sorted(changes, key=version_of, reverse=True)


def history_bundle(kind: str, changes: Sequence[Mapping[str, Any]], base: str,
                   resources: Mapping[tuple[str, int], Mapping[str, Any]] | None = None, *,
                   links: Sequence[Mapping[str, str]], total: int | None,
                   ) -> dict[str, Any]:  # fmt: skip
    """The ``history`` Bundle of ``changes`` (of one record or of every record of ``kind``, in
    the order given: newest first): one entry per version, each with its version and time
    (``response``), what it did (``request``) and the version's contents (``resource``, from
    ``resources`` by record id and version, when there) whose ``meta`` says who did it, why and
    which Provenance records it (`VERSION_PROVENANCE`); ``total`` when every version is known."""
    contents = resources or {}

    def entry(change: Mapping[str, Any]) -> dict[str, Any]:
        record_id, version, did = str(change["aggregate_id"]), version_of(change), operation(change)
        method, url, status = {
            "CREATE": ("POST", kind, "201 Created"),
            "UPDATE": ("PUT", f"{kind}/{record_id}", "200 OK"),
            "DELETE": ("DELETE", f"{kind}/{record_id}", "204 No Content"),
        }[did]
        entry = {
            "fullUrl": f"{base}/{kind}/{record_id}/_history/{version}",
            "request": {"method": method, "url": url},
            "response": {"status": status, "etag": etag(version),
                         "lastModified": change["recorded_at"]},
        }  # fmt: skip
        if (resource := contents.get((record_id, version))) is not None:
            meta = {**resource.get("meta", {}), "lastUpdated": change["recorded_at"]}
            meta["extension"] = [*meta.get("extension", []), version_provenance(change)]
            entry["resource"] = {**resource, "meta": meta}
        return entry

    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": list(links),
                              "entry": [entry(c) for c in changes]}  # fmt: skip
    if total is not None:
        bundle["total"] = total
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
