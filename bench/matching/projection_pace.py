"""The patient projection's pace over a backlog, into a read model that already holds N patients.

The backlog is every event the register section committed (registrations, match assessments,
links), read from the start of the service's topic by a second `ProjectionRunner` of the
patient index projection, under a group of its own, into a database of its own. That database
is first filled with N synthetic patients' documents (``insert_many`` of what the projection
writes for a registration: the documented bulk path), so each event is applied against a read
model of the size the figure names. The rate runs from the first event handed to the
projection to the last one applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from bench.matching.synthetic import synthetic_people
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.projections import ProjectionRunner, VersionedChange
from patient.adapters.golden_records import PATIENTS
from patient.adapters.projection import PatientIndexProjection, record_fields
from patient.bootstrap import RunningPatient
from patient.settings import PatientSettings

_DONE_TIMEOUT_S = 600.0
_INSERT_BATCH = 5_000


class _FirstApplied(PatientIndexProjection):
    """The patient index projection, noting when it was handed its first event (batched
    events reach it through ``changes``, the others through ``apply``)."""

    first: float | None = None

    def changes(self, envelope: Envelope) -> Sequence[VersionedChange] | None:
        self._note_first()
        return super().changes(envelope)

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        self._note_first()
        await super().apply(envelope, db)

    def _note_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()


async def patient_projection_eps(
    settings: PatientSettings, running: RunningPatient, service: str,
    registered: Sequence[str], *, prefill: int,
) -> float:  # fmt: skip
    """Events per second the patient projection applies the service's backlog at."""
    events = sum(running.store.current_version(patient_id) for patient_id in registered)
    run = uuid.uuid4().hex[:10]
    mongo = build_mongo_client(settings)
    database: AsyncDatabase[Any] = mongo[f"bench_{run}_patients"]
    projection = _FirstApplied(name=f"bench-pace-{run}", topic=events_topic(service))
    try:
        await projection.setup(database)
        await _prefill(database, prefill)
        runner = ProjectionRunner(
            projection, kafka=KafkaConnection.from_settings(settings), database=database,
            cipher=running.cipher,
        )  # fmt: skip
        task = asyncio.create_task(runner.run())
        try:
            deadline = time.perf_counter() + _DONE_TIMEOUT_S
            while runner.applier is None or runner.applier.applied < events:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"the projection applied fewer than {events} events")
                await asyncio.sleep(0.005)
            finished = time.perf_counter()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await mongo.drop_database(database.name)
        await mongo.close()
    if projection.first is None:
        raise RuntimeError("the runner applied events it never handed to the projection")
    return events / (finished - projection.first)


async def _prefill(database: AsyncDatabase[Any], count: int) -> None:
    batch: list[dict[str, Any]] = []
    for demographics in synthetic_people(count, seed=29):
        batch.append({"_id": str(uuid.uuid4()), "version": 1,
                      **record_fields(demographics, forgotten=False)})  # fmt: skip
        if len(batch) == _INSERT_BATCH:
            await database[PATIENTS].insert_many(batch, ordered=False)
            batch = []
    if batch:
        await database[PATIENTS].insert_many(batch, ordered=False)
