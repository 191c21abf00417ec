"""Running an ``$export`` job: every patient the patient service lists (a care team's for a
Group), their orders and results, read through the services' queries as the principal who
kicked the job off, written as NDJSON per resource type to the job store.

The services decide what the exporter may read (a bulk-export client's roles: registrar for
demographics, lab for orders and results); the gateway never reads their databases. A
forgotten patient is never listed by the patient service; orders or results of one (refused
with FAILED_PRECONDITION) or of a record gone meanwhile (NOT_FOUND) are skipped, never a
failure. Any other refusal of one patient's records becomes an OperationOutcome line in the
job's error file; a service that stays unreachable fails the job.

Memory is bounded by one page of patients and their records: each page is written to the
store's streams before the next is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.application import GatewayApp, InsufficientScopeError, Route
from gateway.domain.export_jobs import ExportFile, ExportJob, ExportStore, FileWriter, JobStatus
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.outcomes import Issue, operation_outcome
from gateway.entrypoints.fhir.patient_resource import resource_from_record
from gateway.entrypoints.fhir.records import route
from gateway.entrypoints.fhir.result_resources import observations_from_result, report_from_result
from gateway.entrypoints.fhir.service_request_resource import resource_from_order
from gateway.ports import DownstreamAnswer

_log = logging.getLogger("gateway.export")

LIST_PATIENTS = route("patient", "Patient", "ListPatients", Interaction.SEARCH)
LIST_ORDERS = route("orders", "ServiceRequest", "ListOrders", Interaction.SEARCH)
LIST_RESULTS = route("results", "DiagnosticReport", "ListResults", Interaction.SEARCH)
PATIENT_PAGE = 100
RECORD_PAGE = 200  # the services' largest page
# A patient's records read at once: enough to hide latency, few enough for a 2-core machine.
CONCURRENT_PATIENTS = 8
_SKIPPED = frozenset({"FAILED_PRECONDITION", "NOT_FOUND"})
_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})
_ATTEMPTS = 4


class ExportFailedError(Exception):
    """The job cannot go on (a service unreachable, a refusal of the whole listing)."""


class LeaseLostError(Exception):
    """The job was deleted, or another replica holds it: stop without writing anything more."""


@dataclass
class _Outputs:
    """The job's open files, one per type, opened on the first line of each."""

    store: ExportStore
    job_id: str
    stack: contextlib.AsyncExitStack
    writers: dict[str, FileWriter]
    counts: dict[str, int]

    async def write(self, kind: str, resource: Mapping[str, Any]) -> None:
        if kind not in self.writers:
            writer = self.store.file_writer(self.job_id, kind)
            self.writers[kind] = await self.stack.enter_async_context(writer)
            self.counts[kind] = 0
        line = json.dumps(resource, separators=(",", ":"), ensure_ascii=False) + "\n"
        await self.writers[kind].write(line.encode())
        self.counts[kind] += 1

    def files(self, kinds: Sequence[str]) -> tuple[ExportFile, ...]:
        return tuple(ExportFile(k, self.writers[k].file_id, self.counts[k])
                     for k in kinds if k in self.writers)  # fmt: skip


class ExportRunner:
    """Runs jobs on this replica, holding each one's lease while it runs."""

    def __init__(self, app: GatewayApp, store: ExportStore, *, runner_id: str,
                 lease_s: float, retry_delay_s: float = 0.5,
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self._app = app
        self._store = store
        self._runner_id = runner_id
        self._lease = timedelta(seconds=lease_s)
        self._retry_delay_s = retry_delay_s
        self._now = clock or (lambda: datetime.now(UTC))
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job_id: str) -> None:
        """Run the job in the background if this replica can claim it."""
        task = asyncio.create_task(self.run(job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop running jobs: their leases run out and another replica resumes them."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(self, job_id: str) -> None:
        """Claim the job and run it to its end (a lost claim does nothing)."""
        now = self._now()
        if not await self._store.claim(job_id, self._runner_id, now, now + self._lease):
            return
        job = await self._store.get(job_id)
        if job is None:
            return
        # A claimed job starts over: a replica that died mid-run left partial files behind.
        await self._store.discard_files(job_id)
        try:
            ended = await self._export(job)
        except LeaseLostError:
            if await self._deleted(job_id):
                await self._store.discard_files(job_id)
            return
        except ExportFailedError as failed:
            _log.warning("export job failed", extra={"job_id": job_id, "reason": str(failed)})
            ended = replace(job, status=JobStatus.FAILED, failure=str(failed), progress="failed")
        if not await self._store.finish(ended, self._runner_id) and await self._deleted(job_id):
            await self._store.discard_files(job_id)  # deleted while it ran: leave nothing

    async def _deleted(self, job_id: str) -> bool:
        return await self._store.get(job_id) is None

    async def _export(self, job: ExportJob) -> ExportJob:
        caller = job.owner.caller()
        async with contextlib.AsyncExitStack() as stack:
            outputs = _Outputs(self._store, job.job_id, stack, {}, {})
            errors = _Outputs(self._store, job.job_id, stack, {}, {})
            exported = 0
            async for patients in self._patient_pages(caller, job):
                await self._renew(job, f"patients: {exported} exported")
                records = await _gather_limited(
                    [self._records_of(caller, job, p, errors) for p in patients]
                )
                for patient, resources in zip(patients, records, strict=True):
                    if "Patient" in job.types and _since(patient, job.since):
                        await outputs.write("Patient", resource_from_record(patient))
                    for kind, resource in resources:
                        await outputs.write(kind, resource)
                exported += len(patients)
            await self._renew(job, f"patients: {exported} exported; closing files")
        return replace(job, status=JobStatus.DONE, progress=f"done: {exported} patients",
                       outputs=outputs.files(job.types),
                       errors=errors.files(["OperationOutcome"]))  # fmt: skip

    async def _renew(self, job: ExportJob, progress: str) -> None:
        if not await self._store.renew(job.job_id, self._runner_id, self._now() + self._lease,
                                       progress):  # fmt: skip
            raise LeaseLostError(job.job_id)

    async def _patient_pages(self, caller: Caller, job: ExportJob,
                             ) -> AsyncIterator[list[Mapping[str, Any]]]:  # fmt: skip
        values: dict[str, Any] = {"page_size": PATIENT_PAGE}
        if job.group:
            values["care_team_member"] = job.group
        async for answer in self._pages(caller, LIST_PATIENTS, values, job):
            if answer.status != "OK":
                raise ExportFailedError(f"the patient service refused the listing: {answer.status}")
            if patients := [p for p in answer.body.get("patients", ()) if not p.get("forgotten")]:
                yield patients

    async def _records_of(self, caller: Caller, job: ExportJob, patient: Mapping[str, Any],
                          errors: _Outputs) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
        patient_id = str(patient["patient_id"])
        resources: list[tuple[str, dict[str, Any]]] = []
        if "ServiceRequest" in job.types:
            async for order in self._listed(caller, LIST_ORDERS, patient_id, job, errors):
                if _since(order, job.since):
                    resources.append(("ServiceRequest", resource_from_order(order)))
        if {"DiagnosticReport", "Observation"} & set(job.types):
            async for result in self._listed(caller, LIST_RESULTS, patient_id, job, errors):
                if not _since(result, job.since):
                    continue
                if "DiagnosticReport" in job.types:
                    resources.append(("DiagnosticReport", report_from_result(result)))
                if "Observation" in job.types:
                    resources += [("Observation", o) for o in observations_from_result(result)]
        return resources

    async def _listed(
        self, caller: Caller, listing: Route, patient_id: str, job: ExportJob, errors: _Outputs
    ) -> AsyncIterator[Mapping[str, Any]]:
        field = "orders" if listing is LIST_ORDERS else "results"
        values = {"patient_id": patient_id, "page_size": RECORD_PAGE}
        async for answer in self._pages(caller, listing, values, job):
            if answer.status in _SKIPPED:
                return  # a forgotten patient, or one gone since the listing
            if answer.status != "OK":
                await errors.write("OperationOutcome", _refusal(listing, patient_id, answer))
                return
            for record in answer.body.get(field, ()):
                yield record

    async def _pages(self, caller: Caller, listing: Route, values: Mapping[str, Any],
                     job: ExportJob) -> AsyncIterator[DownstreamAnswer]:  # fmt: skip
        """Each page's answer, following ``next_page_token`` until an answer has none."""
        while True:
            answer = await self._call(caller, listing, values, job)
            yield answer
            token = answer.body.get("next_page_token", "") if answer.status == "OK" else ""
            if not token:
                return
            values = {**values, "page_token": token}

    async def _call(self, caller: Caller, listing: Route, values: Mapping[str, Any],
                    job: ExportJob) -> DownstreamAnswer:  # fmt: skip
        request_id = f"export-{job.job_id}"
        for attempt in range(_ATTEMPTS):
            try:
                answer = await self._app.perform(caller, listing, values, request_id=request_id)
            except InsufficientScopeError as missing:
                raise ExportFailedError(
                    f"the token's scopes do not allow {missing.scope}"
                ) from None
            if answer.status not in _TRANSIENT:
                return answer
            await asyncio.sleep(self._retry_delay_s * 2**attempt)
        raise ExportFailedError(f"the {listing.service} service did not answer: {answer.status}")


async def _gather_limited(calls: Sequence[Any]) -> list[Any]:
    limit = asyncio.Semaphore(CONCURRENT_PATIENTS)

    async def limited(call: Any) -> Any:
        async with limit:
            return await call

    return list(await asyncio.gather(*(limited(c) for c in calls)))


def _since(record: Mapping[str, Any], since: datetime | None) -> bool:
    """Whether a record changed at or after ``since`` (its ``recorded_at``)."""
    if since is None:
        return True
    recorded = record.get("recorded_at", "")
    return not recorded or datetime.fromisoformat(recorded.replace("Z", "+00:00")) >= since


def _refusal(listing: Route, patient_id: str, answer: DownstreamAnswer) -> dict[str, Any]:
    """The error file's line for a patient whose records a service refused (ids only)."""
    code = "forbidden" if answer.status == "PERMISSION_DENIED" else "exception"
    diagnostics = f"Patient/{patient_id}: {listing.operation.name} answered {answer.status}"
    return operation_outcome([Issue(code, diagnostics)])
