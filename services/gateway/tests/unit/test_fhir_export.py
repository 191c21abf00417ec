"""Bulk Data ``$export`` over fake services and an in-memory job store (a fake of our own
port): kick-off checks, the job's run, the manifest and files, ownership, delete, resume and
the job's own failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fhir.resources.R4B import get_fhir_model_class

from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.export_jobs import ExportJob, JobStatus
from gateway.domain.identity import IdentityMapping
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.export_api import Exports
from gateway.entrypoints.fhir.export_runner import ExportRunner
from gateway.entrypoints.http import build_http_app
from gateway.ports import DownstreamAnswer

from .conftest import AUDIENCES, FakeServices, FakeVerifier, outcome

pytestmark = pytest.mark.unit

SYSTEM = {"sub": "svc-1", "client_id": "bulk-export-system", "azp": "bulk-export-system",
          "realm_access": {"roles": ["registrar", "lab"]}}  # fmt: skip
TOKENS = {
    "bulk": {**SYSTEM, "scope": "system/*.rs"},
    "bulk-patients-only": {**SYSTEM, "scope": "system/Patient.rs"},
    "other-system": {**SYSTEM, "sub": "svc-2", "scope": "system/*.rs"},
    "user": {"sub": "u-1", "azp": "app", "realm_access": {"roles": ["registrar"]},
             "scope": "user/*.rs"},
}  # fmt: skip
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
P1, P2, FORGOTTEN = (str(uuid.uuid4()) for _ in range(3))
ORDER_ID, RESULT_ID = str(uuid.uuid4()), str(uuid.uuid4())


class MemoryWriter:
    def __init__(self, file_id: str, chunks: list[bytes]) -> None:
        self.file_id = file_id
        self._chunks = chunks

    async def write(self, data: bytes) -> None:
        self._chunks.append(data)


class MemoryExportStore:
    """The `ExportStore` port in memory, with the Mongo store's lease rules."""

    def __init__(self) -> None:
        self.jobs: dict[str, ExportJob] = {}
        self.files: dict[tuple[str, str], list[bytes]] = {}

    async def create(self, job: ExportJob) -> None:
        self.jobs[job.job_id] = job

    async def get(self, job_id: str) -> ExportJob | None:
        return self.jobs.get(job_id)

    async def claim(self, job_id: str, runner: str, now: datetime, until: datetime) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status not in {JobStatus.ACCEPTED, JobStatus.RUNNING}:
            return False
        if not job.lease_free(now):
            return False
        self.jobs[job_id] = replace(job, lease_owner=runner, lease_until=until,
                                    status=JobStatus.RUNNING)  # fmt: skip
        return True

    async def renew(self, job_id: str, runner: str, until: datetime, progress: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.lease_owner != runner or job.status is not JobStatus.RUNNING:
            return False
        self.jobs[job_id] = replace(job, lease_until=until, progress=progress)
        return True

    async def finish(self, job: ExportJob, runner: str) -> bool:
        held = self.jobs.get(job.job_id)
        if held is None or held.lease_owner != runner:
            return False
        self.jobs[job.job_id] = replace(job, lease_owner=runner, lease_until=None)
        return True

    async def delete(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        await self.discard_files(job_id)

    async def discard_files(self, job_id: str) -> None:
        for key in [k for k in self.files if k[0] == job_id]:
            del self.files[key]

    @contextlib.asynccontextmanager
    async def file_writer(self, job_id: str, kind: str) -> AsyncIterator[MemoryWriter]:
        file_id = uuid.uuid4().hex
        chunks: list[bytes] = []
        yield MemoryWriter(file_id, chunks)
        self.files[job_id, file_id] = chunks

    async def file_chunks(self, job_id: str, file_id: str) -> AsyncIterator[bytes]:
        if (job_id, file_id) not in self.files:
            raise FileNotFoundError(file_id)
        for chunk in self.files[job_id, file_id]:
            yield chunk

    async def expired(self, now: datetime) -> list[str]:
        return [j.job_id for j in self.jobs.values() if j.expired(now)]


def patient(patient_id: str, family: str) -> dict[str, Any]:
    return {"patient_id": patient_id, "version": "2",
            "demographics": {"name": {"family": family, "given": ["Ada"]}, "sex": "SEX_FEMALE",
                             "birth_date": "1980-01-02"}}  # fmt: skip


def order(patient_id: str) -> dict[str, Any]:
    return {"order_id": ORDER_ID, "version": "2", "patient_id": patient_id, "test_code": "2345-7",
            "test_display": "Glucose", "priority": "PRIORITY_ROUTINE",
            "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
            "orderer": "u-1", "placed_at": "2026-12-07T10:00:00Z",
            "status": "ORDER_STATUS_ACTIVE", "recorded_at": "2026-12-07T10:01:00Z"}  # fmt: skip


def result(patient_id: str) -> dict[str, Any]:
    glucose = {"code": "2345-7", "display": "Glucose", "quantity": {"value": "140",
               "unit": "mg/dL"}, "interpretation": "INTERPRETATION_HIGH"}  # fmt: skip
    return {"result_id": RESULT_ID, "version": "1", "order_id": ORDER_ID,
            "patient_id": patient_id, "status": "RESULT_STATUS_FINAL",
            "observations": [glucose, {"code": "718-7", "text": "see note"}],
            "performer": "lab-1", "effective_at": "2026-12-07T11:00:00Z",
            "issued_at": "2026-12-07T12:00:00Z",
            "recorded_at": "2026-12-07T12:00:00Z"}  # fmt: skip


def services(**answers: list[DownstreamAnswer]) -> FakeServices:
    """Two patients on two pages (the forgotten one's orders refused), P1 with an order and
    its result, P2 with none."""
    default = {
        "ListPatients": [
            DownstreamAnswer("OK", body={"patients": [patient(P1, "Okafor")],
                                         "next_page_token": "p2"}),
            DownstreamAnswer("OK", body={"patients": [patient(P2, "Lindqvist")]}),
        ],
        "ListOrders": [DownstreamAnswer("OK", body={"orders": [order(P1)]}),
                       DownstreamAnswer("OK", body={})],
        "ListResults": [DownstreamAnswer("OK", body={"results": [result(P1)]}),
                        DownstreamAnswer("OK", body={})],
    }  # fmt: skip
    return FakeServices({**default, **answers})


@contextlib.asynccontextmanager
async def export_client(
    fake: FakeServices, store: MemoryExportStore
) -> AsyncIterator[tuple[httpx.AsyncClient, ExportRunner]]:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier(TOKENS), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("1000/minute"), tokens=issuer, downstream=fake,
        audit=RefusalLog(), audiences=AUDIENCES,
    )  # fmt: skip
    runner = ExportRunner(app, store, runner_id="replica-a", lease_s=30, retry_delay_s=0)
    exports = Exports(store, runner, timedelta(hours=1))
    asgi = build_http_app(app, jwks=issuer.jwks(), max_body_bytes=4096, cors_origins=[],
                          exports=exports)  # fmt: skip
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway/fhir/r4") as http:
        try:
            yield http, runner
        finally:
            await runner.close()


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def finished(http: httpx.AsyncClient, status_url: str) -> httpx.Response:
    for _ in range(200):
        answer = await http.get(status_url, headers=auth("bulk"))
        if answer.status_code != 202:
            return answer
        assert answer.headers["X-Progress"]
        assert answer.headers["Retry-After"] == "2"
        await asyncio.sleep(0.01)
    raise AssertionError("the export did not finish")


async def ndjson(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    answer = await http.get(url, headers=auth("bulk", Accept="application/fhir+ndjson"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+ndjson")
    return [json.loads(line) for line in answer.text.splitlines()]


async def test_export_writes_ndjson_per_type_that_validates_line_by_line() -> None:
    store = MemoryExportStore()
    async with export_client(services(), store) as (http, _):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        assert kicked.status_code == 202, kicked.text
        status_url = kicked.headers["Content-Location"]
        assert "/fhir/r4/$export-status/" in status_url
        done = await finished(http, status_url)
        assert done.status_code == 200, done.text
        manifest = done.json()
        assert manifest["requiresAccessToken"] is True
        assert manifest["request"].endswith("/fhir/r4/$export")
        assert manifest["error"] == []
        counts = {o["type"]: o["count"] for o in manifest["output"]}
        assert counts == {"Patient": 2, "ServiceRequest": 1, "DiagnosticReport": 1,
                          "Observation": 2}  # fmt: skip
        for output in manifest["output"]:
            lines = await ndjson(http, output["url"])
            assert len(lines) == output["count"]
            for line in lines:
                assert line["resourceType"] == output["type"]
                get_fhir_model_class(output["type"]).model_validate(line)


async def test_kick_off_needs_prefer_respond_async() -> None:
    async with export_client(services(), MemoryExportStore()) as (http, _):
        refused = await http.get("/$export", headers=auth("bulk"))
        assert outcome(refused, 400).issue[0].expression == ["Prefer"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("_type=Patient,Medication", "_type"), ("_outputFormat=text/csv", "_outputFormat"),
     ("_since=yesterday", "_since"), ("_since=2026-12-07T10:00:00", "_since"),
     ("_typeFilter=Patient%3Factive%3Dtrue", "_typeFilter"), ("_type=Patient&_type=Observation",
     "_type")],
)  # fmt: skip
async def test_kick_off_refuses_a_parameter_it_cannot_use_naming_it(query: str, parameter: str
                                                                    ) -> None:  # fmt: skip
    store = MemoryExportStore()
    async with export_client(services(), store) as (http, _):
        refused = await http.get(f"/$export?{query}", headers=auth("bulk", **ASYNC))
        assert outcome(refused, 400).issue[0].expression == [parameter]
        assert not store.jobs


async def test_export_needs_a_backend_services_system_scopes_for_each_type() -> None:
    async with export_client(services(), MemoryExportStore()) as (http, _):
        user = await http.get("/$export", headers=auth("user", **ASYNC))
        assert outcome(user, 403).issue[0].code == "forbidden"
        assert "insufficient_scope" in user.headers["WWW-Authenticate"]
        narrow = await http.get("/$export", headers=auth("bulk-patients-only", **ASYNC))
        assert "system/ServiceRequest.rs" in str(outcome(narrow, 403).issue[0].diagnostics)
        only_patients = await http.get("/Patient/$export?_type=Patient",
                                       headers=auth("bulk-patients-only", **ASYNC))  # fmt: skip
        assert only_patients.status_code == 202


async def test_forgotten_patients_records_are_skipped_and_the_job_completes() -> None:
    refused = DownstreamAnswer("FAILED_PRECONDITION", "the patient was forgotten")
    fake = services(
        ListPatients=[DownstreamAnswer("OK", body={"patients": [
            patient(FORGOTTEN, "Gone"), patient(P1, "Okafor")]})],
        ListOrders=[DownstreamAnswer("OK", body={"orders": [order(P1)]}), refused],
        ListResults=[refused, DownstreamAnswer("OK", body={"results": [result(P1)]})],
    )  # fmt: skip
    # Listing is concurrent: answer by patient, not by call order.
    answers = {
        "ListOrders": {P1: DownstreamAnswer("OK", body={"orders": [order(P1)]})},
        "ListResults": {P1: DownstreamAnswer("OK", body={"results": [result(P1)]})},
    }
    listed = fake.call

    async def by_patient(call: Any, token: str) -> DownstreamAnswer:
        if call.method in answers:
            fake.calls.append(call)
            return answers[call.method].get(call.request["patient_id"], refused)
        return await listed(call, token)

    fake.call = by_patient  # type: ignore[method-assign]
    async with export_client(fake, MemoryExportStore()) as (http, _):
        kicked = await http.get("/Patient/$export", headers=auth("bulk", **ASYNC))
        manifest = (await finished(http, kicked.headers["Content-Location"])).json()
        assert manifest["error"] == []
        by_type = {o["type"]: o for o in manifest["output"]}
        assert by_type["ServiceRequest"]["count"] == 1
        orders = await ndjson(http, by_type["ServiceRequest"]["url"])
        assert {o["subject"]["reference"] for o in orders} == {f"Patient/{P1}"}


async def test_another_refusal_is_an_error_file_line_and_the_job_completes() -> None:
    fake = services(ListOrders=[DownstreamAnswer("PERMISSION_DENIED", "not allowed")])
    async with export_client(fake, MemoryExportStore()) as (http, _):
        kicked = await http.get("/$export?_type=ServiceRequest", headers=auth("bulk", **ASYNC))
        manifest = (await finished(http, kicked.headers["Content-Location"])).json()
        assert manifest["output"] == []
        [error] = manifest["error"]
        assert error["type"] == "OperationOutcome"
        lines = await ndjson(http, error["url"])
        assert len(lines) == 2  # one per patient
        get_fhir_model_class("OperationOutcome").model_validate(lines[0])
        assert lines[0]["issue"][0]["code"] == "forbidden"


async def test_only_the_principal_who_kicked_off_reads_the_job() -> None:
    async with export_client(services(), MemoryExportStore()) as (http, _):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        status_url = kicked.headers["Content-Location"]
        manifest = (await finished(http, status_url)).json()
        outcome(await http.get(status_url, headers=auth("other-system")), 404)
        file_url = manifest["output"][0]["url"]
        outcome(await http.get(file_url, headers=auth("other-system")), 404)
        outcome(await http.delete(status_url, headers=auth("other-system")), 404)
        outcome(await http.get(file_url.rsplit("/", 1)[0] + "/nope", headers=auth("bulk")), 404)


async def test_delete_removes_the_job_and_its_files() -> None:
    store = MemoryExportStore()
    async with export_client(services(), store) as (http, _):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        status_url = kicked.headers["Content-Location"]
        await finished(http, status_url)
        deleted = await http.delete(status_url, headers=auth("bulk"))
        assert deleted.status_code == 202
        outcome(await http.get(status_url, headers=auth("bulk")), 404)
        assert not store.jobs
        assert not store.files


async def test_an_expired_job_is_gone() -> None:
    store = MemoryExportStore()
    async with export_client(services(), store) as (http, _):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        status_url = kicked.headers["Content-Location"]
        await finished(http, status_url)
        job_id = status_url.rsplit("/", 1)[1]
        store.jobs[job_id] = replace(store.jobs[job_id], expires_at=datetime.now(UTC))
        outcome(await http.get(status_url, headers=auth("bulk")), 404)
        await http.get("/$export", headers=auth("bulk", **ASYNC))  # a kick-off sweeps it
        assert job_id not in store.jobs


async def test_a_job_whose_replica_died_is_resumed_by_the_next_status_poll() -> None:
    store, fake = MemoryExportStore(), services()
    async with export_client(fake, store) as (http, runner):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        status_url = kicked.headers["Content-Location"]
        await finished(http, status_url)
        job_id = status_url.rsplit("/", 1)[1]
        fake.answers = services().answers  # the services answer the second run afresh
        # As if another replica had claimed it, written part of a file and died.
        died = datetime.now(UTC) - timedelta(seconds=1)
        store.jobs[job_id] = replace(store.jobs[job_id], status=JobStatus.RUNNING, outputs=(),
                                     lease_owner="replica-b", lease_until=died)  # fmt: skip
        store.files[job_id, "partial"] = [b'{"resourceType":"Patient"}\n']
        resumed = await finished(http, status_url)
        assert resumed.status_code == 200
        assert (job_id, "partial") not in store.files
        assert store.jobs[job_id].lease_owner == "replica-a"
        assert {o["type"]: o["count"] for o in resumed.json()["output"]}["Patient"] == 2
        await runner.close()


async def test_a_service_that_stays_unreachable_fails_the_job_with_an_outcome() -> None:
    fake = services(ListPatients=[DownstreamAnswer("UNAVAILABLE", "down")])
    async with export_client(fake, MemoryExportStore()) as (http, _):
        kicked = await http.get("/$export", headers=auth("bulk", **ASYNC))
        failed = await finished(http, kicked.headers["Content-Location"])
        issue = outcome(failed, 500).issue[0]
        assert issue.code == "exception"
        assert "patient service did not answer" in str(issue.diagnostics)


async def test_group_is_a_care_team_members_panel_and_unknown_ones_are_404() -> None:
    empty = DownstreamAnswer("OK", body={"patients": []})
    async with export_client(services(ListPatients=[empty]), MemoryExportStore()) as (http, _):
        outcome(await http.get("/Group/clinician-9/$export", headers=auth("bulk", **ASYNC)), 404)
    fake = services()
    async with export_client(fake, MemoryExportStore()) as (http, _):
        kicked = await http.get("/Group/clinician-9/$export", headers=auth("bulk", **ASYNC))
        assert kicked.status_code == 202
        await finished(http, kicked.headers["Content-Location"])
        panels = {c.request.get("care_team_member") for c in fake.calls
                  if c.method == "ListPatients"}  # fmt: skip
        assert panels == {"clinician-9"}


async def test_since_keeps_the_orders_and_results_recorded_from_then() -> None:
    async with export_client(services(), MemoryExportStore()) as (http, _):
        kicked = await http.get("/$export?_since=2026-12-07T11:30:00Z&_type=ServiceRequest,"
                                "DiagnosticReport", headers=auth("bulk", **ASYNC))  # fmt: skip
        assert kicked.status_code == 202, kicked.text
        manifest = (await finished(http, kicked.headers["Content-Location"])).json()
        assert {o["type"]: o["count"] for o in manifest["output"]} == {"DiagnosticReport": 1}


def test_the_capability_statement_lists_export_at_each_level() -> None:
    statement = capability_statement("http://gateway/fhir/r4", software_version="0", date="2026")
    rest = statement["rest"][0]
    served = {r["type"]: r for r in rest["resource"]}
    bulk = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
    assert [o["definition"] for o in rest["operation"]] == [f"{bulk}export"]
    assert f"{bulk}patient-export" in [o["definition"] for o in served["Patient"]["operation"]]
    assert [o["definition"] for o in served["Group"]["operation"]] == [f"{bulk}group-export"]
