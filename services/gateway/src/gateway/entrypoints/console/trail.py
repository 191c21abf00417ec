"""What the console shows, read from the audit service as the auditor (their exchanged token).

Each page is one or more RPCs of ``clinical.audit.v1.AuditService`` through `GatewayApp.perform`,
the same admission, scope check and token exchange as every other gateway route.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.application import GatewayApp, Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.console.filters import TimelineFilter
from gateway.policy import Operation

PAGE_SIZE = 1000
MAX_PAGES = 5  # a timeline of up to 5000 changes and 5000 accesses; the page says when cut


def _route(rpc: str, interaction: Interaction) -> Route:
    return Route(Operation(rpc, "AuditEvent", interaction), "audit")


HISTORY = _route("History", Interaction.SEARCH)
ACCESS_LOG = _route("AccessLog", Interaction.SEARCH)
VERIFY = _route("Verify", Interaction.READ)
EXPORT = _route("ExportAuditEvents", Interaction.SEARCH)


class AuditUnavailableError(Exception):
    """The audit service refused or failed; the message is its status and words."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class TimelineEntry:
    """One change or one access, as a row of the timeline."""

    at: datetime
    kind: str  # "change" or "access"
    what: str
    record: str
    outcome: str
    actor: str
    roles: str
    client: str
    purpose: str
    source_ip: str
    user_agent: str
    trace_id: str
    break_glass: bool = False
    reason: str = ""
    record_id: str = ""  # a changed record's id (a UUID), to link to its version history


@dataclass(frozen=True)
class Timeline:
    entries: tuple[TimelineEntry, ...]
    complete: bool


@dataclass(frozen=True)
class PartitionCheck:
    topic: str
    partition: int
    ok: bool
    records: int
    attested_through: str
    checkpoint_signed_at: datetime | None
    checkpoint_age: str
    unattested: int
    first_bad_offset: str
    reason: str


async def _call(app: GatewayApp, caller: Caller, route: Route, values: Mapping[str, Any],
                request_id: str) -> Mapping[str, Any]:  # fmt: skip
    answer = await app.perform(caller, route, values, request_id=request_id)
    if answer.status != "OK":
        raise AuditUnavailableError(answer.status, answer.message)
    return answer.body


async def _all(app: GatewayApp, caller: Caller, route: Route, values: Mapping[str, Any], *,
               key: str, request_id: str) -> tuple[list[Mapping[str, Any]], bool]:  # fmt: skip
    items: list[Mapping[str, Any]] = []
    token = ""
    for _ in range(MAX_PAGES):
        body = await _call(app, caller, route, {**values, "page_size": PAGE_SIZE,
                                                 "page_token": token}, request_id)  # fmt: skip
        items += body.get(key, [])
        token = str(body.get("next_page_token", ""))
        if not token:
            return items, True
    return items, False


async def patient_timeline(app: GatewayApp, caller: Caller, patient_id: str,
                           request_id: str, shown: TimelineFilter | None = None,
                           ) -> Timeline:  # fmt: skip
    """Every change of the patient's records and every access to them, newest first; those
    ``shown`` selects (the audit service filters times and an access's actor; a change's actor
    is filtered here: History has no actor filter)."""
    shown = shown or TimelineFilter()
    changes: list[Mapping[str, Any]] = []
    accesses: list[Mapping[str, Any]] = []
    all_changes = all_accesses = True
    window = shown.time_range()
    if shown.kind in ("", "change"):
        query = {"patient_id": patient_id, **({"recorded": window} if window else {})}
        changes, all_changes = await _all(app, caller, HISTORY, query, key="changes",
                                          request_id=request_id)  # fmt: skip
        if shown.actor:
            changes = [c for c in changes if c.get("actor", {}).get("subject") == shown.actor]
    if shown.kind in ("", "access"):
        query = {"patient_id": patient_id, **({"occurred": window} if window else {}),
                 **({"actor_subject": shown.actor} if shown.actor else {})}  # fmt: skip
        accesses, all_accesses = await _all(app, caller, ACCESS_LOG, query, key="records",
                                            request_id=request_id)  # fmt: skip
    entries = [*map(change_entry, changes), *map(access_entry, accesses)]
    entries.sort(key=lambda e: e.at, reverse=True)
    return Timeline(tuple(entries), all_changes and all_accesses)


async def record_changes(app: GatewayApp, caller: Caller, record_id: str,
                         request_id: str) -> tuple[list[Mapping[str, Any]], bool]:  # fmt: skip
    """Every recorded change of one record (an aggregate), and whether all pages were read."""
    return await _all(app, caller, HISTORY, {"aggregate_id": record_id}, key="changes",
                      request_id=request_id)  # fmt: skip


async def verify_topic(app: GatewayApp, caller: Caller, topic: str,
                       request_id: str) -> list[PartitionCheck]:  # fmt: skip
    body = await _call(app, caller, VERIFY, {"topic": topic}, request_id)
    return [partition_check(topic, p) for p in body.get("partitions", [])]


async def export_bundle(app: GatewayApp, caller: Caller, patient_id: str,
                        request_id: str) -> dict[str, Any]:  # fmt: skip
    """The patient's trail as a FHIR R4 collection Bundle of AuditEvent resources."""
    events, _ = await _all(app, caller, EXPORT, {"patient_id": patient_id},
                           key="audit_events", request_id=request_id)  # fmt: skip
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": json.loads(str(e))} for e in events]}  # fmt: skip


def _time(value: object) -> datetime:
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _code(value: object, prefix: str) -> str:
    text = str(value or "")
    return text.removeprefix(prefix) if text and not text.endswith("UNSPECIFIED") else ""


def _trace_id(trace_context: Mapping[str, Any] | None) -> str:
    parts = str((trace_context or {}).get("traceparent", "")).split("-")
    return parts[1] if len(parts) == 4 else ""


def _actor(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    actor = entry.get("actor", {})
    subject = str(actor.get("subject", ""))
    if actor.get("on_behalf_of"):
        subject = f"{subject} (for {actor['on_behalf_of']})"
    return subject, ", ".join(actor.get("roles", [])), str(actor.get("client_id", ""))


def change_entry(change: Mapping[str, Any]) -> TimelineEntry:
    subject, roles, client = _actor(change)
    return TimelineEntry(
        at=_time(change.get("recorded_at")), kind="change",
        what=str(change.get("event_type", "")),
        record=f"{change.get('aggregate_type', '')} {change.get('aggregate_id', '')} "
               f"v{change.get('aggregate_version', '')}",
        outcome="recorded", actor=subject, roles=roles, client=client,
        purpose=_code(change.get("purpose_of_use"), "PURPOSE_OF_USE_"),
        source_ip=str(change.get("source_ip", "")), user_agent=str(change.get("user_agent", "")),
        trace_id=_trace_id(change.get("trace_context")),
        record_id=canonical_uuid(str(change.get("aggregate_id", ""))),
    )  # fmt: skip


def canonical_uuid(text: str) -> str:
    """``text`` as a lowercase hyphenated UUID; "" when it is none."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return ""


def access_entry(record: Mapping[str, Any]) -> TimelineEntry:
    subject, roles, client = _actor(record)
    action = _code(record.get("action"), "ACCESS_ACTION_")
    operation = str(record.get("operation", ""))
    ids: Sequence[str] = record.get("accessed_record_ids", [])
    return TimelineEntry(
        at=_time(record.get("occurred_at")), kind="access",
        what=f"{action} {operation}".strip(),
        record=f"{record.get('record_type', '')} {' '.join(ids)}".strip(),
        outcome=_code(record.get("outcome"), "ACCESS_OUTCOME_"), actor=subject, roles=roles,
        client=client, purpose=_code(record.get("purpose_of_use"), "PURPOSE_OF_USE_"),
        source_ip=str(record.get("source_ip", "")), user_agent=str(record.get("user_agent", "")),
        trace_id=_trace_id(record.get("trace_context")),
        # Older access records (before break-glass was recorded) have no such field.
        break_glass=bool(record.get("break_glass", False)),
        reason=str(record.get("break_glass_reason") or record.get("reason") or ""),
    )  # fmt: skip


def age_of(then: datetime, now: datetime) -> str:
    """A short age: "42 s", "7 min 3 s", "5 h 2 min", "3 d 4 h"."""
    seconds = max(0, int((now - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    if minutes:
        return f"{minutes} min {seconds % 60} s"
    return f"{seconds} s"


def partition_check(
    topic: str, report: Mapping[str, Any], now: datetime | None = None
) -> PartitionCheck:
    signed_at = _time(report["attested_at"]) if report.get("attested_at") else None
    age = age_of(signed_at, now or datetime.now(UTC)) if signed_at else ""
    return PartitionCheck(
        topic=topic, partition=int(report.get("partition", 0)), ok=bool(report.get("ok")),
        records=int(report.get("records", 0)),
        attested_through=str(report.get("attested_through", "")),
        checkpoint_signed_at=signed_at, checkpoint_age=age,
        unattested=int(report.get("unattested", 0)),
        first_bad_offset=str(report.get("first_bad_offset", "")),
        reason=str(report.get("reason", "")),
    )  # fmt: skip
