"""Read models after crypto-shredding: a forgotten patient's documents become markers.

The log needs nothing (its ciphertext is unreadable once the key is gone), but read models hold
plaintext copies. A projection that meets `PatientForgottenError` (a replay) or hears that a
patient was forgotten (live) replaces each of the patient's documents with a marker: the id,
the version, the patient id and ``forgotten: true``, every other field gone. Documents are
found by their ``patient_id`` field, so projections keep one in every document about a patient.

A projection may have decrypted a patient's event (with a key cached before the forget) and
write it just after the live sweep found nothing to mark. So the sweep first records the
patient in ``forgotten_patients`` (ids only), and every projection that decrypts checks the
patients of each batch against it after writing, sweeping again if one was forgotten: whichever
runs second sees the other's write.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope

FORGOTTEN_FIELD = "forgotten"
# The patients a service heard were forgotten (their ids, nothing else), read by its projections.
FORGOTTEN_PATIENTS = "forgotten_patients"
# The patient service's event type that announces a crypto-shredding.
PATIENT_FORGOTTEN = "PatientForgotten"


def forgotten_marker(patient_id: str, version: int) -> dict[str, Any]:
    """What a forgotten patient's document holds: no PHI, and enough to answer "forgotten"."""
    return {"version": version, "patient_id": patient_id, FORGOTTEN_FIELD: True}


async def replace_with_marker(
    collection: AsyncCollection[Any], document_id: str, version: int, patient_id: str
) -> None:
    """Turn one document into a marker, whatever version it had reached (idempotent).

    Unlike `upsert_versioned`, a newer document is replaced too: it may hold the patient's PHI
    from before they were forgotten. The marker keeps the higher of the two versions.
    """
    existing = await collection.find_one({"_id": document_id}, {"version": 1})
    if existing is not None:
        version = max(version, int(existing.get("version", 0)))
    await collection.replace_one(
        {"_id": document_id}, forgotten_marker(patient_id, version), upsert=True
    )


async def record_forgotten(db: AsyncDatabase[Any], patient_id: str) -> None:
    """Remember that the patient was forgotten (idempotent), before sweeping their documents."""
    await db[FORGOTTEN_PATIENTS].update_one(
        {"_id": patient_id}, {"$setOnInsert": {"_id": patient_id}}, upsert=True
    )


async def forgotten_among(db: AsyncDatabase[Any], patient_ids: Sequence[str]) -> list[str]:
    """Which of ``patient_ids`` this service heard were forgotten."""
    if not patient_ids:
        return []
    found = db[FORGOTTEN_PATIENTS].find({"_id": {"$in": list(patient_ids)}}, {"_id": 1})
    return [str(document["_id"]) async for document in found]


async def forget_patient_documents(collection: AsyncCollection[Any], patient_id: str) -> int:
    """Replace every document about the patient with a marker; return how many there were."""
    replaced = 0
    query = {"patient_id": patient_id, FORGOTTEN_FIELD: {"$ne": True}}
    async for document in collection.find(query, {"version": 1}):
        await collection.replace_one(
            {"_id": document["_id"]},
            forgotten_marker(patient_id, int(document.get("version", 0))),
        )
        replaced += 1
    return replaced


class ForgottenPatients:
    """The live half of crypto-shredding for a service that holds copies of patients' PHI.

    It reads the patient topic and, for each ``PatientForgotten``, runs the service's
    ``on_forgotten`` callbacks (evict the patient's data key and cached aggregates; in the
    patient service, destroy the key: awaited before the offset is committed) and turns
    the patient's documents in ``marked_collections`` into markers, so reads show "forgotten"
    at once instead of after a rebuild. The event's own payload is unreadable by then (it is
    encrypted under the destroyed key), so the clear envelope is all it uses.
    """

    def __init__(
        self,
        *,
        name: str,
        patient_topic: str,
        marked_collections: Sequence[str],
        on_forgotten: Sequence[Callable[[str], object]] = (),
    ) -> None:
        self.name = name
        self.topics: Sequence[str] = (patient_topic,)
        # It owns no collection: a rebuild of it must not drop the read model it marks.
        self.collections: Sequence[str] = ()
        self._marked = tuple(marked_collections)
        self._on_forgotten = tuple(on_forgotten)
        # Only the clear envelope matters: the runner need not open a single payload.
        self.reads_payload = False

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        """Nothing to index: it only rewrites documents of other projections."""

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if envelope.event_type == PATIENT_FORGOTTEN and envelope.patient_id:
            await self._forget(envelope.patient_id, db)

    async def apply_forgotten(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        # Every event of a forgotten patient lands here on a replay; only the fact matters.
        await self.apply(envelope, db)

    async def _forget(self, patient_id: str, db: AsyncDatabase[Any]) -> None:
        await record_forgotten(db, patient_id)  # first: see the module's docstring
        for callback in self._on_forgotten:
            outcome = callback(patient_id)
            if inspect.isawaitable(outcome):  # e.g. destroying the key: done before the commit
                await outcome
        for collection in self._marked:
            await forget_patient_documents(db[collection], patient_id)
