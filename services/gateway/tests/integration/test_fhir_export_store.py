"""The ``$export`` job store on the real MongoDB server (FerretDB): jobs every replica sees, one
lease holder at a time, files streamed in and out of GridFS, expiry and deletion."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from gateway.adapters.export_store import MongoExportStore
from gateway.domain.export_jobs import ExportFile, ExportJob, ExportOwner, JobStatus

pytestmark = pytest.mark.integration

OWNER = ExportOwner("svc-1", "bulk-export-system", ("lab", "registrar"), ("system/*.rs",))


def new_job(**changes: Any) -> ExportJob:
    now = datetime.now(UTC).replace(microsecond=0)
    job = ExportJob(uuid.uuid4().hex, OWNER, "http://gateway/fhir/r4/$export",
                    ("Patient", "Observation"), now, now + timedelta(hours=1))  # fmt: skip
    return ExportJob(**{**job.__dict__, **changes})


async def test_a_job_reads_back_as_it_was_written(mongo_database: AsyncDatabase[Any]) -> None:
    store = MongoExportStore(mongo_database)
    job = new_job(since=datetime(2026, 12, 1, tzinfo=UTC), group="clinician-1")
    await store.create(job)
    assert await store.get(job.job_id) == job
    assert await store.get(uuid.uuid4().hex) is None


async def test_one_replica_holds_a_job_until_its_lease_runs_out(
    mongo_database: AsyncDatabase[Any],
) -> None:
    store = MongoExportStore(mongo_database)
    job = new_job()
    await store.create(job)
    now = datetime.now(UTC)
    assert await store.claim(job.job_id, "replica-a", now, now + timedelta(seconds=30))
    assert not await store.claim(job.job_id, "replica-b", now, now + timedelta(seconds=30))
    assert await store.renew(job.job_id, "replica-a", now + timedelta(seconds=60), "page 2")
    assert not await store.renew(job.job_id, "replica-b", now + timedelta(seconds=60), "x")
    later = now + timedelta(seconds=61)  # replica-a died: its lease ran out
    assert await store.claim(job.job_id, "replica-b", later, later + timedelta(seconds=30))
    assert not await store.renew(job.job_id, "replica-a", later, "too late")
    held = await store.get(job.job_id)
    assert held is not None
    assert (held.status, held.lease_owner) == (JobStatus.RUNNING, "replica-b")
    done = ExportJob(**{**held.__dict__, "status": JobStatus.DONE, "progress": "done",
                        "outputs": (ExportFile("Patient", "f1", 3),)})  # fmt: skip
    assert not await store.finish(done, "replica-a")
    assert await store.finish(done, "replica-b")
    finished = await store.get(job.job_id)
    assert finished is not None
    assert finished.status is JobStatus.DONE
    assert finished.outputs == (ExportFile("Patient", "f1", 3),)
    assert not await store.claim(job.job_id, "replica-c", later, later + timedelta(seconds=1))


async def test_files_stream_through_gridfs_and_go_with_their_job(
    mongo_database: AsyncDatabase[Any],
) -> None:
    store = MongoExportStore(mongo_database)
    job, other = new_job(), new_job()
    for each in (job, other):
        await store.create(each)
    line = b'{"resourceType":"Patient","id":"x"}\n'
    async with store.file_writer(job.job_id, "Patient") as writer:
        for _ in range(20_000):  # ~700 KB: several GridFS chunks
            await writer.write(line)
    read = b"".join([chunk async for chunk in store.file_chunks(job.job_id, writer.file_id)])
    assert read == line * 20_000
    with pytest.raises(FileNotFoundError):  # another job's file is not this one's
        [chunk async for chunk in store.file_chunks(other.job_id, writer.file_id)]
    with pytest.raises(FileNotFoundError):
        [chunk async for chunk in store.file_chunks(job.job_id, "not-an-object-id")]
    await store.delete(job.job_id)
    assert await store.get(job.job_id) is None
    with pytest.raises(FileNotFoundError):
        [chunk async for chunk in store.file_chunks(job.job_id, writer.file_id)]


async def test_expired_jobs_are_listed_for_the_sweep(mongo_database: AsyncDatabase[Any]) -> None:
    store = MongoExportStore(mongo_database)
    now = datetime.now(UTC)
    gone, kept = new_job(expires_at=now - timedelta(seconds=1)), new_job()
    for each in (gone, kept):
        await store.create(each)
    assert await store.expired(now) == [gone.job_id]
