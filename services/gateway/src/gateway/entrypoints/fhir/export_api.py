"""FHIR Bulk Data ``$export`` (the async pattern of Bulk Data Access 1.0/2.0): kick-off at system,
``Patient`` and ``Group/<id>`` level, status polling, the NDJSON files, and deleting a job.

Kick-off answers 202 with ``Content-Location`` naming the job's status URL; the status is 202
with ``X-Progress`` and ``Retry-After`` while it runs, 200 with the manifest when it is done, a
500 OperationOutcome when the job itself failed; DELETE removes the job and its files (202).
Only the principal who kicked a job off sees it (404 for anyone else, as for an expired one).
Exporting needs a backend service's token (client credentials) whose ``system/`` scopes read
and search every exported type: ``system/*.rs``, or ``system/Patient.rs`` and so on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.domain.export_jobs import (
    EXPORTED_TYPES,
    ExportJob,
    ExportOwner,
    ExportStore,
    JobStatus,
)
from gateway.domain.identity import Caller
from gateway.domain.scopes import Context, Interaction, granted
from gateway.entrypoints.bearer import scope_challenge
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    fhir_response,
    information,
    outcome_response,
)
from gateway.entrypoints.fhir.export_runner import LIST_PATIENTS, ExportRunner
from gateway.entrypoints.fhir.outcomes import FhirError, status_error

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
_KICK_OFF_PARAMETERS = frozenset({"_outputFormat", "_type", "_since"})
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_GROUP_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
RETRY_AFTER_S = 2


@dataclass(frozen=True)
class Exports:
    """What the ``$export`` operations need, built by the composition root."""

    store: ExportStore
    runner: ExportRunner
    retention: timedelta  # how long a job and its files are kept after the kick-off


class ExportApi:
    """The ``$export`` operations over `FhirExchange`, jobs in an `ExportStore`."""

    def __init__(self, exchange: FhirExchange, exports: Exports) -> None:
        self._exchange = exchange
        self._store = exports.store
        self._runner = exports.runner
        self._retention = exports.retention

    async def kick_off_system(self, request: Request) -> Response:
        """``GET [base]/$export``: every patient's records."""
        return await self._kick_off(request, group="")

    async def kick_off_patients(self, request: Request) -> Response:
        """``GET [base]/Patient/$export``: the same, every patient's (the platform keeps no
        records that are not a patient's)."""
        return await self._kick_off(request, group="")

    async def kick_off_group(self, request: Request) -> Response:
        """``GET [base]/Group/<id>/$export``: the patients of a care-team member's panel."""
        group = str(request.path_params["id"])
        if not _GROUP_ID.match(group):
            raise FhirError.of(404, "not-found", "no Group has this id")
        return await self._kick_off(request, group=group)

    async def _kick_off(self, request: Request, *, group: str) -> Response:
        caller = await self._exchange.caller(request)
        if not _prefers_async(request):
            raise FhirError.of(400, "invalid", "$export is asynchronous: send Prefer: "
                               "respond-async", expression=("Prefer",))  # fmt: skip
        params = list(request.query_params.multi_items())
        types, since = _kick_off_values(params)
        _check_scopes(caller, types)
        if group:
            await self._check_group(caller, group, request)
        now = datetime.now(UTC)
        for expired in await self._store.expired(now):
            await self._store.delete(expired)
        job = ExportJob(
            job_id=uuid.uuid4().hex, owner=ExportOwner.of(caller), request_url=str(request.url),
            types=types, transaction_time=now, expires_at=now + self._retention,
            since=since, group=group,
        )  # fmt: skip
        await self._store.create(job)
        self._runner.start(job.job_id)
        location = f"{base_url(request)}/$export-status/{job.job_id}"
        return fhir_response(information("export accepted; poll Content-Location"), 202,
                             {"Content-Location": location})  # fmt: skip

    async def _check_group(self, caller: Caller, group: str, request: Request) -> None:
        """404 unless the care-team member has patients (a panel with none is no Group)."""
        values = {"care_team_member": group, "page_size": 1}
        answer = await self._exchange.call(caller, LIST_PATIENTS, values, request)
        if answer.status != "OK":
            raise status_error(answer)
        if not answer.body.get("patients"):
            raise FhirError.of(404, "not-found", "no Group has this id")

    async def status(self, request: Request) -> Response:
        """``GET [base]/$export-status/<job>``: progress, the manifest, or the job's failure."""
        caller = await self._exchange.caller(request)
        job = await self._job(caller, request)
        now = datetime.now(UTC)
        if job.status in {JobStatus.ACCEPTED, JobStatus.RUNNING}:
            if job.lease_free(now):
                self._runner.start(job.job_id)  # unclaimed, or its replica died: resume here
            headers = {"X-Progress": job.progress, "Retry-After": str(RETRY_AFTER_S)}
            return Response(status_code=202, headers=headers)
        if job.status is JobStatus.FAILED:
            raise FhirError.of(500, "exception", f"the export failed: {job.failure}")
        # The Bulk Data manifest is plain JSON, not a FHIR resource.
        return JSONResponse(_manifest(job, base_url(request)), headers={
            "Expires": job.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        })  # fmt: skip

    async def delete(self, request: Request) -> Response:
        """``DELETE [base]/$export-status/<job>``: cancel a running job or remove a done one."""
        caller = await self._exchange.caller(request)
        job = await self._job(caller, request)
        await self._store.delete(job.job_id)
        return Response(status_code=202)

    async def file(self, request: Request) -> Response:
        """``GET [base]/$export-file/<job>/<file>``: one NDJSON file, streamed."""
        try:
            caller = await self._exchange.caller(request)
            job = await self._job(caller, request)
            file_id = str(request.path_params["file"])
            if job.status is not JobStatus.DONE or file_id not in {
                f.file_id for f in (*job.outputs, *job.errors)
            }:
                raise FhirError.of(404, "not-found", "this export has no such file")
        except FhirError as failed:
            return outcome_response(failed)
        chunks = self._store.file_chunks(job.job_id, file_id)
        return StreamingResponse(chunks, media_type=NDJSON)

    async def _job(self, caller: Caller, request: Request) -> ExportJob:
        job_id = str(request.path_params["job"])
        job = await self._store.get(job_id) if _JOB_ID.match(job_id) else None
        if job is None or not job.owner.owns(caller) or job.expired(datetime.now(UTC)):
            raise FhirError.of(404, "not-found", "no such export (or it expired)")
        return job


def _prefers_async(request: Request) -> bool:
    return any(part.strip().lower() == "respond-async"
               for part in request.headers.get("prefer", "").split(","))  # fmt: skip


def _kick_off_values(params: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], datetime | None]:
    """The types and ``_since`` of a kick-off; FhirError 400 naming the parameter otherwise."""
    given: dict[str, str] = {}
    for name, value in params:
        if name in {"_format", "_summary", "_elements"}:
            continue
        if name not in _KICK_OFF_PARAMETERS:
            raise _invalid(name if re.fullmatch(r"[A-Za-z_]{1,40}", name) else "(parameter)",
                           "is not a parameter this server's $export supports")  # fmt: skip
        if name in given:
            raise _invalid(name, "is given twice")
        given[name] = value
    output_format = given.get("_outputFormat", NDJSON).replace(" ", "+")
    if output_format not in OUTPUT_FORMATS:
        raise _invalid("_outputFormat", "must be application/fhir+ndjson")
    types = tuple(t.strip() for t in given.get("_type", ",".join(EXPORTED_TYPES)).split(","))
    if not types or any(t not in EXPORTED_TYPES for t in types):
        raise _invalid(
            "_type", f"names a type not exported; give some of {', '.join(EXPORTED_TYPES)}"
        )
    since = None
    if "_since" in given:
        try:
            since = datetime.fromisoformat(given["_since"].replace(" ", "+").replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(
                "_since", "must be an instant (YYYY-MM-DDThh:mm:ss with a zone)"
            ) from None
        if since.tzinfo is None:
            raise _invalid("_since", "must be an instant with its zone")
    return tuple(t for t in EXPORTED_TYPES if t in types), since


def _invalid(parameter: str, text: str) -> FhirError:
    return FhirError.of(400, "invalid", f"{parameter} {text}", expression=(parameter,))


def _check_scopes(caller: Caller, types: Sequence[str]) -> None:
    """A backend service's ``system/`` scopes must read and search every exported type."""
    for kind in types:
        for interaction in (Interaction.READ, Interaction.SEARCH):
            if not granted(caller.scopes, [Context.SYSTEM], kind, interaction):
                scope = f"system/{kind}.rs"
                raise FhirError.of(
                    403, "forbidden", f"$export needs a backend service token with {scope}",
                    headers={"WWW-Authenticate": scope_challenge(scope)},
                )  # fmt: skip


def _manifest(job: ExportJob, base: str) -> dict[str, object]:
    def entry(kind: str, file_id: str, count: int) -> dict[str, object]:
        return {"type": kind, "url": f"{base}/$export-file/{job.job_id}/{file_id}",
                "count": count}  # fmt: skip

    return {
        "transactionTime": job.transaction_time.isoformat(timespec="milliseconds"),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [entry(f.type, f.file_id, f.count) for f in job.outputs],
        "error": [entry(f.type, f.file_id, f.count) for f in job.errors],
    }
