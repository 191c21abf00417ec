"""Care relationships as a read model: which clinician treats which patient, from the event log.

    {_id: "<patient id>/<subject>/<basis>", version, patient_id, subject, basis, active}

Three facts make a relationship (``basis``): a care-team assignment on the patient
(``CareTeamMemberAssigned`` / ``CareTeamMemberEnded`` on the patient topic), the ordering
clinician of an order (``OrderPlaced`` on the orders topic: its ``orderer``), and the clinician
who signed it (``OrderSigned``: its ``signature.signer``; the envelope names the patient). Every
service that serves a patient's data keeps this read model itself, fed from both topics, and
answers "is this clinician related to this patient" by primary key: no collection scan, no call
to another service. A forgotten patient's documents become markers (no ``active``): nobody
is related to a record that no longer exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import orders_events_pb2 as order_events
from clinical.events.v1 import patient_events_pb2 as patient_events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.projections.changes import VersionedChange, apply_changes
from clinical_platform.projections.projection import TopicProjection
from clinical_platform.security.forgetting import PATIENT_FORGOTTEN, forget_patient_documents

CARE_RELATIONSHIPS = "care_relationships"
CARE_TEAM = "care-team"
ORDERING = "ordering"
SIGNING = "signing"
BASES = (CARE_TEAM, ORDERING, SIGNING)


def relationship_id(patient_id: str, subject: str, basis: str) -> str:
    return f"{patient_id}/{subject}/{basis}"


class CareRelationships(Protocol):
    """The port servicers decide by: which of some patients a clinician is related to."""

    async def related_patients(self, subject: str, patient_ids: Iterable[str]) -> set[str]: ...


class MongoCareRelationships:
    """`CareRelationships` over the read model: one primary-key ``$in`` per question."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self._collection = collection

    async def related_patients(self, subject: str, patient_ids: Iterable[str]) -> set[str]:
        ids = [relationship_id(p, subject, basis) for p in set(patient_ids) for basis in BASES]
        if not ids or not subject:
            return set()
        found = self._collection.find({"_id": {"$in": ids}, "active": True}, {"patient_id": 1})
        return {str(document["patient_id"]) async for document in found}


class CareRelationshipsProjection(TopicProjection):
    """Projects care-team, ordering and signing events into ``care_relationships``."""

    # Lookups name the documents' ids; ``patient_id`` is for forgetting a patient's.
    INDEXES = (IndexModel([("patient_id", ASCENDING)]),)
    # Only these events' payloads are opened: the runner decrypts no other event of the two
    # topics (a registration's demographics are none of this read model's business).
    payload_event_types = frozenset(
        {"CareTeamMemberAssigned", "CareTeamMemberEnded", "OrderPlaced", "OrderSigned"}
    )

    def __init__(self, *, name: str, patient_topic: str, orders_topic: str) -> None:
        super().__init__(name=name, topic=patient_topic, collection=CARE_RELATIONSHIPS)
        self._orders_topic = orders_topic

    @property
    def topics(self) -> Sequence[str]:
        return (*super().topics, self._orders_topic)

    def changes(self, envelope: Envelope) -> list[VersionedChange] | None:
        """The relationship an event starts or ends; none for every other event. A forgotten
        patient's relationships end (`apply`: it reads, so None)."""
        patient_id = envelope.patient_id or envelope.aggregate_id
        if envelope.event_type == PATIENT_FORGOTTEN:
            return None
        if envelope.event_type == "CareTeamMemberAssigned":
            member = patient_events.CareTeamMemberAssigned.FromString(envelope.payload)
            subject, basis, active = member.member_subject, CARE_TEAM, True
        elif envelope.event_type == "CareTeamMemberEnded":
            ended = patient_events.CareTeamMemberEnded.FromString(envelope.payload)
            subject, basis, active = ended.member_subject, CARE_TEAM, False
        elif envelope.event_type == "OrderPlaced":
            placed = order_events.OrderPlaced.FromString(envelope.payload)
            patient_id, subject, basis, active = placed.patient_id, placed.orderer, ORDERING, True
        elif envelope.event_type == "OrderSigned":
            # Signing is a clinical act on the patient's order, attributed like placing it.
            signed = order_events.OrderSigned.FromString(envelope.payload)
            subject, basis, active = signed.signature.signer, SIGNING, True
        else:
            return []
        if not subject or not patient_id:
            return []
        fields = {"patient_id": patient_id, "subject": subject, "basis": basis, "active": active}
        # A care team's changes are versions of one patient, so the guard orders them; every
        # order is its own aggregate, and any one of them makes the relationship (never ends it).
        document_id = relationship_id(patient_id, subject, basis)
        return [
            VersionedChange(CARE_RELATIONSHIPS, document_id, envelope.aggregate_version, fields)
        ]

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Apply one event (the runner batches `changes` instead)."""
        changes = self.changes(envelope)
        if changes is None:
            # Its payload stays sealed (the key is gone by now): the envelope names the patient.
            await forget_patient_documents(db[CARE_RELATIONSHIPS], envelope.patient_id)
        else:
            await apply_changes(db, changes)


def care_relationships(db: AsyncDatabase[Any]) -> MongoCareRelationships:
    return MongoCareRelationships(db[CARE_RELATIONSHIPS])
