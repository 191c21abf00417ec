"""Read models after crypto-shredding: a forgotten patient's documents become markers.

The log needs nothing (its ciphertext is unreadable once the key is gone), but read models hold
plaintext copies. A projection that meets `PatientForgottenError` (a replay) or hears that a
patient was forgotten (live) replaces each of the patient's documents with a marker: the id,
the version, the patient id and ``forgotten: true``, every other field gone. Documents are
found by their ``patient_id`` field, so projections keep one in every document about a patient.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

FORGOTTEN_FIELD = "forgotten"


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
