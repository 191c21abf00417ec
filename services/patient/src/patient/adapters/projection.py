"""The patient index projection: records, links and the review queue from events.

Every write is idempotent and safe to replay: record documents go through `upsert_versioned`
(an older event never overwrites a newer state), links are versioned by their anchor's version,
review items are set from state, so applying events again, or in a different interleaving of
partitions, ends in the same documents. Golden records are computed when read
(adapters/golden_records.py), so a registration costs the projection one write per event.
Registrations and assessments with nothing to review need no read, so the runner writes a
poll's worth of them in one command (`changes`). Every version of a record's contents is kept
too (adapters/patient_versions.py): an update or a link reads the version before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.codec import DomainEvent
from clinical_platform.projections import (
    VersionedChange,
    apply_changes,
    ensure_indexes,
    upsert_versioned,
)
from patient.adapters.documents import demographics_document, search_terms
from patient.adapters.event_catalog import PATIENT_EVENTS, patient_event
from patient.adapters.golden_records import LINKS, PATIENTS
from patient.adapters.patient_versions import (
    PATIENT_VERSIONS,
    forget_versions,
    record_version,
    registered_version,
)
from patient.domain.assessment import MatchGrade
from patient.domain.demographics import FORGOTTEN, PatientDemographics
from patient.matching.blocking import blocking_keys
from patient.matching.record import match_record

REVIEW_QUEUE = "review_queue"


def pair_id(first: str, second: str) -> str:
    return ":".join(sorted((first, second)))


class PatientIndexProjection:
    """Builds the patient read model from ``clinical.patient.events.v1``."""

    def __init__(self, *, name: str, topic: str) -> None:
        self._name = name
        self._topics = (topic,)

    @property
    def name(self) -> str:
        """Names the consumer group (``projection.<name>``)."""
        return self._name

    @property
    def topics(self) -> Sequence[str]:
        return self._topics

    @property
    def collections(self) -> Sequence[str]:
        return (PATIENTS, PATIENT_VERSIONS, LINKS, REVIEW_QUEUE)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await ensure_indexes(
            db[PATIENTS],
            [
                # One field each: the store answers equality per field (docs/read-models.md).
                # No index on blocking_keys: registration matches against the service's own
                # blocking index, and the store cannot use one for that field's $in anyway.
                IndexModel([("search_family", ASCENDING)]),
                IndexModel([("search_given", ASCENDING)]),
                IndexModel([("search_birth_date", ASCENDING)]),
                IndexModel([("search_identifiers", ASCENDING)]),
            ],
        )
        # A search at an instant: the version's search fields, then its validity.
        await ensure_indexes(
            db[PATIENT_VERSIONS],
            [IndexModel([(f"search_{name}", ASCENDING)])
             for name in ("family", "given", "birth_date", "identifiers")],
        )  # fmt: skip
        await ensure_indexes(db[LINKS], [IndexModel([("patient_ids", ASCENDING)])])
        await ensure_indexes(db[REVIEW_QUEUE], [IndexModel([("queued", ASCENDING)])])

    def changes(self, envelope: Envelope) -> Sequence[VersionedChange] | None:
        """A registration (the record and its first version), or an assessment with nothing to
        review: batched by the runner. Updates, links, review items and forgetting read first
        (None)."""
        if envelope.aggregate_type != PATIENT_EVENTS.aggregate_type:
            return ()
        attributes: dict[str, Any] = vars(patient_event(envelope))
        patient_id, version = envelope.aggregate_id, envelope.aggregate_version
        match envelope.event_type:
            case "PatientRegistered":
                fields = record_fields(attributes["demographics"], forgotten=False)
                recorded_at = recorded_time(envelope)
                # The version first: a reader who waited for the record's version finds it.
                return (registered_version(patient_id, version, recorded_at, fields),
                        VersionedChange(PATIENTS, patient_id, version,
                                        {**fields, "updated_at": attributes["timestamp"],
                                         "recorded_at": recorded_at}))  # fmt: skip
            case "PatientMatchAssessed" if not any(
                candidate.grade is MatchGrade.POSSIBLE_MATCH
                for candidate in attributes["candidates"]
            ):
                return (VersionedChange(PATIENTS, patient_id, version, {}),)
            case "CareTeamMemberAssigned" | "CareTeamMemberEnded":
                # The care team's read model is `CareRelationshipsProjection`'s: only the version.
                return (VersionedChange(PATIENTS, patient_id, version, {}),)
        return None

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if envelope.aggregate_type != PATIENT_EVENTS.aggregate_type:
            return  # another aggregate's event on the topic: not ours to project
        await self._apply(envelope, patient_event(envelope), db)

    async def apply_forgotten(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """An event encrypted under a forgotten patient's destroyed key: the record's marker."""
        if envelope.aggregate_type != PATIENT_EVENTS.aggregate_type:
            return
        occurred_at = envelope.occurred_at.ToDatetime(tzinfo=UTC)
        await _mark_forgotten(db, envelope.aggregate_id, envelope.aggregate_version, occurred_at,
                              recorded_time(envelope))  # fmt: skip

    async def _apply(self, envelope: Envelope, event: DomainEvent, db: AsyncDatabase[Any]) -> None:
        event_type, patient_id = envelope.event_type, envelope.aggregate_id
        version, recorded_at = envelope.aggregate_version, recorded_time(envelope)
        patients = db[PATIENTS]
        # Event classes are generated by eventsourcing, invisible to mypy: read attributes by name.
        attributes: dict[str, Any] = vars(event)
        occurred_at = attributes["timestamp"]
        match event_type:
            case "PatientRegistered" | "DemographicsUpdated":
                fields = record_fields(attributes["demographics"], forgotten=False)
                if event_type == "PatientRegistered":
                    await apply_changes(db, [registered_version(patient_id, version,
                                                                recorded_at, fields)])  # fmt: skip
                else:
                    await record_version(db, patient_id, version, recorded_at, fields=fields)
                await upsert_versioned(patients, patient_id, version,
                                       {**fields, "updated_at": occurred_at,
                                        "recorded_at": recorded_at})  # fmt: skip
            case "PatientMatchAssessed":
                await upsert_versioned(patients, patient_id, version, {})
                for candidate in attributes["candidates"]:
                    if candidate.grade is MatchGrade.POSSIBLE_MATCH:
                        await _queue_for_review(db, patient_id, str(candidate.patient_id),
                                                candidate.score)  # fmt: skip
            case "PatientsLinked" | "PatientsUnlinked":
                other = str(attributes["linked_patient_id"])
                if await _is_forgotten(db, other):
                    return  # its links went with it (see _mark_forgotten)
                linked = event_type == "PatientsLinked"
                await upsert_versioned(
                    db[LINKS], pair_id(patient_id, other), version,
                    {"patient_ids": sorted((patient_id, other)), "active": linked},
                )  # fmt: skip
                await _resolve_review(db, patient_id, other, "linked" if linked else "unlinked")
                await record_version(db, patient_id, version, recorded_at,
                                     linked=other if linked else "",
                                     unlinked="" if linked else other)  # fmt: skip
                # The record's version last: a reader waiting for it sees the link's effects.
                await upsert_versioned(patients, patient_id, version, {"recorded_at": recorded_at})
            case "PatientForgotten":
                await _mark_forgotten(db, patient_id, version, occurred_at, recorded_at)
            case "CareTeamMemberAssigned" | "CareTeamMemberEnded":
                await upsert_versioned(patients, patient_id, version, {})
            case _:
                msg = f"no projection for {event_type}"
                raise TypeError(msg)


async def _mark_forgotten(
    db: AsyncDatabase[Any], patient_id: str, version: int, occurred_at: Any, recorded_at: datetime
) -> None:
    """The record's marker, and no links or review items: a replay cannot read those recorded
    on the forgotten record's events (their payloads are shredded), so the live model drops
    them too."""
    fields = record_fields(FORGOTTEN, forgotten=True)
    times = {"updated_at": occurred_at, "recorded_at": recorded_at}
    await upsert_versioned(db[PATIENTS], patient_id, version, {**fields, **times})
    await db[LINKS].delete_many({"patient_ids": patient_id})
    await forget_versions(db, patient_id)
    await db[REVIEW_QUEUE].delete_many({"_id": {"$regex": f"(^|:){re.escape(patient_id)}($|:)"}})


async def _is_forgotten(db: AsyncDatabase[Any], patient_id: str) -> bool:
    return (
        await db[PATIENTS].find_one({"_id": patient_id, "forgotten": True}, {"_id": 1}) is not None
    )


def recorded_time(envelope: Envelope) -> datetime:
    """When the event was recorded on the log (UTC): a version's time."""
    return envelope.recorded_at.ToDatetime(tzinfo=UTC)


def record_fields(demographics: PatientDemographics, *, forgotten: bool) -> dict[str, Any]:
    return {
        "demographics": demographics_document(demographics),
        **search_terms(demographics),
        "blocking_keys": [] if forgotten else blocking_keys(match_record(demographics)),
        "forgotten": forgotten,
    }


async def _queue_for_review(
    db: AsyncDatabase[Any], patient_id: str, candidate_id: str, score: float
) -> None:
    if await _is_forgotten(db, candidate_id):
        return  # its review items went with it (see _mark_forgotten)
    # Fields set here and the resolution set by a link decision commute, so whichever event is
    # applied first (they may sit in different partitions) the item ends the same.
    await db[REVIEW_QUEUE].update_one(
        {"_id": pair_id(patient_id, candidate_id)},
        {"$set": {"patient_id": patient_id, "candidate_patient_id": candidate_id,
                  "score": score, "queued": True}},
        upsert=True,
    )  # fmt: skip


async def _resolve_review(db: AsyncDatabase[Any], first: str, second: str, decision: str) -> None:
    if await _is_forgotten(db, second):
        return
    await db[REVIEW_QUEUE].update_one(
        {"_id": pair_id(first, second)}, {"$set": {"resolution": decision}}, upsert=True
    )
