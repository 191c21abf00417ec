"""The results read model: one document per result with every revision, from the results topic.

    {_id, version, order_id, patient_id, status, observations: [...], performer, effective_at,
     issued_at, recorded_at, codes: [...], report_code,
     revisions: [{version, status, observations, recorded_by, recorded_at, reason}]}

A revision is appended with ``$push`` in the same version-guarded upsert that sets the current
observations, so a replayed amendment is skipped as a whole and never pushed twice. Every
version of a result is one of its revisions, so any version (or the one current at an instant)
is read from the one document. ``codes`` (the current observations' LOINC codes) and
``report_code`` (the one observation's code, or Laboratory report for several) sit at the top
level, where FerretDB can answer filters on them from an index.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import results_events_pb2 as events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.projections import TopicProjection, VersionedChange, apply_changes
from results.adapters.observation_documents import Document, observation_document

logger = logging.getLogger(__name__)

RESULTS_COLLECTION = "results"
AGGREGATE_TYPE = "LabResult"
_REVISION_STATUS = {"ResultAmended": "amended", "ResultCorrected": "corrected"}
# LOINC "Laboratory report": what a report of several tests is reported under.
LABORATORY_REPORT = "11502-2"


def instant(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


class ResultsProjection(TopicProjection):
    """Projects LabResult events into the ``results`` collection."""

    # A patient's results and an order's results, newest first; a patient's by code.
    INDEXES = (
        IndexModel(
            [("patient_id", ASCENDING), ("issued_at", DESCENDING), ("_id", ASCENDING)],
            name="patient_issued",
        ),
        IndexModel(
            [("order_id", ASCENDING), ("issued_at", DESCENDING), ("_id", ASCENDING)],
            name="order_issued",
        ),
        IndexModel([("patient_id", ASCENDING), ("codes", ASCENDING)], name="patient_codes"),
        IndexModel(
            [("patient_id", ASCENDING), ("report_code", ASCENDING)], name="patient_report_code"
        ),
    )

    def __init__(self, *, name: str, topic: str, collection: str = RESULTS_COLLECTION) -> None:
        super().__init__(name=name, topic=topic, collection=collection)

    def changes(self, envelope: Envelope) -> list[VersionedChange]:
        """One event's change; none for events of other aggregates or unknown types."""
        if envelope.aggregate_type != AGGREGATE_TYPE:
            return []
        result_id, version = envelope.aggregate_id, envelope.aggregate_version
        if envelope.event_type == "ResultPosted":
            fields = _posted(events.ResultPosted.FromString(envelope.payload), version)
            return [VersionedChange(self.collection, result_id, version, fields)]
        if envelope.event_type in _REVISION_STATUS:
            status = _REVISION_STATUS[envelope.event_type]
            revised: events.ResultAmended | events.ResultCorrected = (
                events.ResultAmended.FromString(envelope.payload)
                if envelope.event_type == "ResultAmended"
                else events.ResultCorrected.FromString(envelope.payload)
            )
            observations = [observation_document(o) for o in revised.observations]
            revision = {
                "version": version,
                "status": status,
                "observations": observations,
                "recorded_by": revised.revision.revised_by,
                "recorded_at": instant(revised.revision.revised_at),
                "reason": revised.revision.reason,
            }
            fields = {"status": status, "observations": observations,
                      "recorded_at": revision["recorded_at"], **_codes(observations)}  # fmt: skip
            return [
                VersionedChange(
                    self.collection, result_id, version, fields,
                    extra_update={"$push": {"revisions": revision}},
                )
            ]  # fmt: skip
        logger.info(
            "event skipped by the results projection",
            extra={"event_type": envelope.event_type, "event_id": envelope.event_id},
        )
        return []

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Apply one event (the runner batches `changes` instead)."""
        await apply_changes(db, self.changes(envelope))


def _posted(posted: events.ResultPosted, version: int) -> Document:
    observations = [observation_document(o) for o in posted.observations]
    return {
        "order_id": posted.order_id,
        "patient_id": posted.patient_id,
        "status": "final",
        "observations": observations,
        "performer": posted.performer,
        "effective_at": instant(posted.effective_at),
        "issued_at": instant(posted.issued_at),
        "recorded_at": instant(posted.issued_at),
        **_codes(observations),
        "revisions": [
            {
                "version": version,
                "status": "final",
                "observations": observations,
                "recorded_by": posted.performer,
                "recorded_at": instant(posted.issued_at),
                "reason": "",
            }
        ],
    }


def _codes(observations: list[Document]) -> Document:
    codes = [str(o["code"]) for o in observations]
    return {
        "codes": sorted(set(codes)),
        "report_code": codes[0] if len(codes) == 1 else LABORATORY_REPORT,
    }
