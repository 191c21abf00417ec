"""Bulk Data ``$export`` jobs: what was asked, by whom, how far it got, and the port of the
store that keeps them where every gateway replica sees them (jobs and their NDJSON files).

A job is owned by the principal who kicked it off (only they read it) and by at most one
replica at a time, through a lease the running replica renews; a job whose lease ran out (its
replica died) is claimed again by whichever replica answers the next status poll, and starts
over. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from clinical_platform.principals import Principal, Role
from gateway.domain.identity import Caller
from gateway.domain.scopes import Context, parse_scopes

# The resource types an export writes, in the order their files are listed.
EXPORTED_TYPES = ("Patient", "ServiceRequest", "DiagnosticReport", "Observation")


class JobStatus(StrEnum):
    ACCEPTED = "accepted"  # kicked off, not claimed yet (or its replica died)
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the job's own failure: no manifest, an OperationOutcome instead


@dataclass(frozen=True)
class ExportOwner:
    """The principal who kicked a job off: enough to call the services as them again, from
    any replica."""

    subject: str
    client_id: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, caller: Caller) -> ExportOwner:
        p = caller.principal
        return cls(p.subject, p.client_id, tuple(sorted(p.roles)),
                   tuple(sorted(s.text for s in caller.scopes)))  # fmt: skip

    def caller(self) -> Caller:
        principal = Principal(subject=self.subject, client_id=self.client_id,
                              roles=frozenset(Role(r) for r in self.roles))  # fmt: skip
        return Caller(principal, parse_scopes(self.scopes), frozenset({Context.SYSTEM}))

    def owns(self, caller: Caller) -> bool:
        return (self.subject, self.client_id) == (
            caller.principal.subject, caller.principal.client_id,
        )  # fmt: skip


@dataclass(frozen=True)
class ExportFile:
    """One NDJSON file of a job: the resource type of its lines and how many."""

    type: str
    file_id: str
    count: int


@dataclass(frozen=True)
class ExportJob:
    job_id: str
    owner: ExportOwner
    request_url: str  # the kick-off's URL, for the manifest's `request`
    types: tuple[str, ...]
    transaction_time: datetime
    expires_at: datetime
    since: datetime | None = None
    group: str = ""  # a care-team member's subject for Group/<id>/$export, else ""
    status: JobStatus = JobStatus.ACCEPTED
    progress: str = "accepted"
    outputs: tuple[ExportFile, ...] = ()
    errors: tuple[ExportFile, ...] = ()
    failure: str = ""  # why the job failed (names no record, no value)
    lease_owner: str = ""
    lease_until: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def lease_free(self, now: datetime) -> bool:
        return self.lease_until is None or self.lease_until <= now


class ExportStore(Protocol):
    """Jobs and their files, shared by the replicas."""

    async def create(self, job: ExportJob) -> None: ...

    async def get(self, job_id: str) -> ExportJob | None: ...

    async def claim(self, job_id: str, runner: str, now: datetime, until: datetime) -> bool:
        """Take the job's lease when it is unfinished and its lease is free (atomically)."""
        ...

    async def renew(self, job_id: str, runner: str, until: datetime, progress: str) -> bool:
        """Extend the lease; False when the job was deleted or another replica took it."""
        ...

    async def finish(self, job: ExportJob, runner: str) -> bool:
        """Record the job's end (status, outputs, errors, failure) if ``runner`` holds it."""
        ...

    async def delete(self, job_id: str) -> None:
        """Remove the job and every file of it."""
        ...

    async def discard_files(self, job_id: str) -> None:
        """Remove the files a run left behind (before a run starts over)."""
        ...

    def file_writer(self, job_id: str, kind: str) -> AbstractAsyncContextManager[FileWriter]:
        """A new file of ``kind`` lines for the job, kept when the block ends."""
        ...

    def file_chunks(self, job_id: str, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk; FileNotFoundError when the job has no such file."""
        ...

    async def expired(self, now: datetime) -> list[str]:
        """The ids of jobs past their expiry."""
        ...


class FileWriter(Protocol):
    file_id: str

    async def write(self, data: bytes) -> None: ...
