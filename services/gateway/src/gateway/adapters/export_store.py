"""``$export`` jobs in the gateway's own MongoDB database: one document per job in
``export_jobs``, the NDJSON files in GridFS (bucket ``export_files``), so every replica behind the
load balancer reads the same jobs and serves the same files.

GridFS streams a file in 255 KiB chunks both ways, so neither writing nor serving one holds it
in memory. Expiry is checked on every read and swept at each kick-off: FerretDB 1.x has no TTL
indexes (``expireAfterSeconds`` is not implemented), so the gateway deletes expired jobs itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from gridfs.asynchronous.grid_file import AsyncGridIn
from pymongo.asynchronous.database import AsyncDatabase

from gateway.domain.export_jobs import (
    ExportFile,
    ExportJob,
    ExportOwner,
    JobStatus,
)

_UNFINISHED = [JobStatus.ACCEPTED.value, JobStatus.RUNNING.value]


class GridFileWriter:
    """One NDJSON file being written."""

    def __init__(self, stream: AsyncGridIn) -> None:
        self._stream = stream
        self.file_id = str(stream._id)

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)


class MongoExportStore:
    """`ExportStore` on a MongoDB database (the gateway's, ``GATEWAY_EXPORT_DATABASE``)."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._jobs = database["export_jobs"]
        self._files = AsyncGridFSBucket(database, bucket_name="export_files")

    async def create(self, job: ExportJob) -> None:
        await self._jobs.insert_one(_document(job))

    async def get(self, job_id: str) -> ExportJob | None:
        document = await self._jobs.find_one({"_id": job_id})
        return None if document is None else _job(document)

    async def claim(self, job_id: str, runner: str, now: datetime, until: datetime) -> bool:
        free = {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}
        claimed = await self._jobs.update_one(
            {"_id": job_id, "status": {"$in": _UNFINISHED}, **free},
            {"$set": {"lease_owner": runner, "lease_until": until,
                      "status": JobStatus.RUNNING.value}},
        )  # fmt: skip
        return claimed.modified_count == 1

    async def renew(self, job_id: str, runner: str, until: datetime, progress: str) -> bool:
        renewed = await self._jobs.update_one(
            {"_id": job_id, "lease_owner": runner, "status": JobStatus.RUNNING.value},
            {"$set": {"lease_until": until, "progress": progress}},
        )
        return renewed.matched_count == 1

    async def finish(self, job: ExportJob, runner: str) -> bool:
        ended = await self._jobs.update_one(
            {"_id": job.job_id, "lease_owner": runner, "status": JobStatus.RUNNING.value},
            {"$set": {"status": job.status.value, "progress": job.progress,
                      "outputs": [_file(f) for f in job.outputs],
                      "errors": [_file(f) for f in job.errors], "failure": job.failure,
                      "lease_until": None}},
        )  # fmt: skip
        return ended.matched_count == 1

    async def delete(self, job_id: str) -> None:
        await self._jobs.delete_one({"_id": job_id})
        await self.discard_files(job_id)

    async def discard_files(self, job_id: str) -> None:
        async for stored in self._files.find({"metadata.job_id": job_id}):
            with contextlib.suppress(NoFile):  # another replica removed it first
                await self._files.delete(stored._id)

    @contextlib.asynccontextmanager
    async def file_writer(self, job_id: str, kind: str) -> AsyncIterator[GridFileWriter]:
        stream = self._files.open_upload_stream(
            f"{kind}.ndjson", metadata={"job_id": job_id, "type": kind}
        )
        try:
            yield GridFileWriter(stream)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()

    async def file_chunks(self, job_id: str, file_id: str) -> AsyncIterator[bytes]:
        try:
            oid = ObjectId(file_id)
        except InvalidId:
            raise FileNotFoundError(file_id) from None
        # The file must be this job's: a file id alone names no owner.
        found = [f async for f in self._files.find({"_id": oid, "metadata.job_id": job_id})]
        if not found:
            raise FileNotFoundError(file_id)
        download = await self._files.open_download_stream(oid)
        while chunk := await download.readchunk():
            yield chunk

    async def expired(self, now: datetime) -> list[str]:
        return [d["_id"] async for d in self._jobs.find({"expires_at": {"$lte": now}}, {"_id": 1})]


def _document(job: ExportJob) -> dict[str, Any]:
    owner = job.owner
    return {
        "_id": job.job_id,
        "owner": {"subject": owner.subject, "client_id": owner.client_id,
                  "roles": list(owner.roles), "scopes": list(owner.scopes)},
        "request_url": job.request_url, "types": list(job.types),
        "transaction_time": job.transaction_time, "expires_at": job.expires_at,
        "since": job.since, "group": job.group, "status": job.status.value,
        "progress": job.progress, "outputs": [_file(f) for f in job.outputs],
        "errors": [_file(f) for f in job.errors], "failure": job.failure,
        "lease_owner": job.lease_owner, "lease_until": job.lease_until,
    }  # fmt: skip


def _file(file: ExportFile) -> dict[str, Any]:
    return {"type": file.type, "file_id": file.file_id, "count": file.count}


def _job(document: Mapping[str, Any]) -> ExportJob:
    owner = document["owner"]
    return ExportJob(
        job_id=document["_id"],
        owner=ExportOwner(owner["subject"], owner["client_id"], tuple(owner["roles"]),
                          tuple(owner["scopes"])),
        request_url=document["request_url"], types=tuple(document["types"]),
        transaction_time=document["transaction_time"], expires_at=document["expires_at"],
        since=document.get("since"), group=document.get("group", ""),
        status=JobStatus(document["status"]), progress=document.get("progress", ""),
        outputs=tuple(ExportFile(**f) for f in document.get("outputs", ())),
        errors=tuple(ExportFile(**f) for f in document.get("errors", ())),
        failure=document.get("failure", ""), lease_owner=document.get("lease_owner", ""),
        lease_until=document.get("lease_until"),
    )  # fmt: skip
