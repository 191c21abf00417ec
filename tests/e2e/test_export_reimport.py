"""The exit strategy, end to end: 1,000 patients with orders and results registered through one
stack's gateway, exported with ``$export`` (Bulk Data, a backend service's token), every NDJSON
line checked by the R4B models, then imported through a fresh stack's API (`FhirImport`, what
``clinical fhir import`` runs) and exported again: the same records, counts and contents, once
old ids are mapped to new ones; each imported record names its source (a Patient identifier,
the import's Provenance). A patient forgotten before the export is not in it; a Group export
holds a care-team member's panel only.

Both stacks are real processes (`running_gateway_platform`: gateway, patient, orders, results,
audit) on their own topics and databases, trusting the real Keycloak.
``EXPORT_E2E_PATIENTS`` sets the number of patients (1,000 by default, as CI runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.gateway_platform import (
    GatewayPlatform,
    running_gateway_platform,
    wait_http,
)
from clinical_testing.keycloak import Keycloak, running_keycloak
from fhir.resources.R4B import get_fhir_model_class

from clinical_cli.fhir_export import BulkExportError, download_export
from clinical_cli.fhir_import import SOURCE_SYSTEM, FhirImport
from clinical_platform.principals import Principal, Role
from gateway.adapters.downstream import GrpcDownstream
from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.ports import DownstreamCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PATIENTS = int(os.environ.get("EXPORT_E2E_PATIENTS", "1000"))
CONCURRENCY = 8
FHIR_JSON = "application/fhir+json"
BULK_CLIENT = "bulk-export-system"
# The clinician signs within five minutes of an OTP login: log in again before that runs out.
MFA_FRESH_S = 240
_STAMPS = frozenset({"id", "meta", "requester", "authoredOn", "performer", "issued"})
_RECORD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        ensure_realm_client(server, BULK_CLIENT)
        yield server


def ensure_realm_client(keycloak: Keycloak, client_id: str) -> None:
    """The realm file's client and its service account's roles, on a Keycloak whose realm was
    imported before the client was added to the file (a fresh one imports it itself)."""
    realm = json.loads((Path(__file__).parents[2] / "infra/keycloak/clinical-realm.json")
                       .read_text())  # fmt: skip
    with keycloak.admin() as admin:
        if admin.get("/clients", params={"clientId": client_id}).json():
            return
        client = next(c for c in realm["clients"] if c["clientId"] == client_id)
        admin.post("/clients", json=client).raise_for_status()
        [created] = admin.get("/clients", params={"clientId": client_id}).json()
        account = admin.get(f"/clients/{created['id']}/service-account-user").json()
        wanted = next(u for u in realm["users"] if u.get("serviceAccountClientId") == client_id)
        roles = [admin.get(f"/roles/{name}").json() for name in wanted["realmRoles"]]
        admin.post(f"/users/{account['id']}/role-mappings/realm", json=roles).raise_for_status()


class ClinicianLogin:
    """The clinician's OTP login, renewed before its MFA is too old to sign."""

    def __init__(self, keycloak: Keycloak) -> None:
        self._keycloak = keycloak
        self._token, self._at = "", 0.0

    def __call__(self) -> str:
        if time.monotonic() - self._at > MFA_FRESH_S:
            self._token = self._login()
            self._at = time.monotonic()
        return self._token

    def _login(self) -> str:
        # Keycloak takes each TOTP code once: another process's login may have used this one.
        for _ in range(3):
            try:
                return self._keycloak.user_token("clinician", "user/*.cruds", otp=True)
            except AssertionError:
                time.sleep(30 - time.time() % 30 + 1)
        return self._keycloak.user_token("clinician", "user/*.cruds", otp=True)


@contextlib.asynccontextmanager
async def stack(servers: ServerEndpoints, keycloak: Keycloak, folder: Path,
                ) -> AsyncIterator[GatewayPlatform]:  # fmt: skip
    async with running_gateway_platform(servers, issuer=keycloak.issuer, folder=folder) as up:
        await wait_http(up.base_url)
        yield up


async def limited(calls: list[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def seed(http: httpx.AsyncClient, clinician: ClinicianLogin, lab: str) -> list[str]:
    """PATIENTS patients, each with a signed glucose order and its result; every tenth with a
    draft order too, every twenty-fifth's result amended. The patients' ids."""
    ids: list[str] = []

    def fhir_headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {clinician()}", "Content-Type": FHIR_JSON,
                "Prefer": "return=minimal"}  # fmt: skip

    lab_headers = {"Authorization": f"Bearer {lab}"}

    async def one(i: int) -> None:
        nonce = uuid.uuid4().hex[:10]
        patient = {"resourceType": "Patient", "gender": "female" if i % 2 else "male",
                   "name": [{"family": f"Export{nonce}", "given": [f"Seed{i}"]}],
                   "birthDate": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                   "identifier": [{"system": "urn:example:mrn",
                                   "value": f"MRN-{nonce}"}]}  # fmt: skip
        made = await http.post("/fhir/r4/Patient", headers=fhir_headers(), json=patient)
        assert made.status_code == 201, made.text
        patient_id = made.headers["Location"].split("/_history/")[0].rpartition("/")[2]
        ids.append(patient_id)
        order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                 "priority": "urgent" if i % 3 else "routine",
                 "subject": {"reference": f"Patient/{patient_id}"},
                 "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                 "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                             "code": "E11.9"}]}]}  # fmt: skip
        placed = await http.post("/fhir/r4/ServiceRequest", headers=fhir_headers(), json=order)
        assert placed.status_code == 201, placed.text
        order_id = placed.headers["Location"].split("/_history/")[0].rpartition("/")[2]
        signed = await http.post(f"/fhir/r4/ServiceRequest/{order_id}/$sign",
                                 headers=fhir_headers())  # fmt: skip
        assert signed.status_code == 200, signed.text
        version = signed.headers["Location"].rpartition("/")[2]
        glucose = {"code": "2345-7", "quantity": {"value": f"{70 + i % 90}.{i % 10}",
                                                  "unit": "mg/dL"}}  # fmt: skip
        posted = await http.post("/api/v1/results", headers=lab_headers, json={
            "request_id": str(uuid.uuid4()), "order_id": order_id, "observations": [glucose],
            "order_min_version": version, "effective_at": "2026-12-01T08:00:00Z"})  # fmt: skip
        assert posted.status_code == 200, posted.text
        if i % 25 == 0:
            corrected = {**glucose, "quantity": {"value": "101.5", "unit": "mg/dL"}}
            amended = await http.post(
                f"/api/v1/results/{posted.json()['result_id']}/amend", headers=lab_headers,
                json={"request_id": str(uuid.uuid4()), "kind": "REVISION_KIND_AMENDMENT",
                      "observations": [corrected], "reason": "recalibrated analyser"},
            )  # fmt: skip
            assert amended.status_code == 200, amended.text
        if i % 10 == 0:
            draft = await http.post("/fhir/r4/ServiceRequest", headers=fhir_headers(),
                                    json={**order, "priority": "stat"})  # fmt: skip
            assert draft.status_code == 201, draft.text

    await limited([functools.partial(one, i) for i in range(PATIENTS)])
    return ids


async def as_registrar(platform: GatewayPlatform, folder: Path, rpc: str,
                       values: Mapping[str, str]) -> None:  # fmt: skip
    """A patient service command as a registrar over its gRPC API, with a token of the stack's
    gateway key: the gateway routes neither erasure nor care-team assignments."""
    issuer = InternalTokenIssuer.from_pem_file(folder / "gateway-keys.pem",
                                               issuer="clinical-platform", ttl_s=60)  # fmt: skip
    registrar = Principal("registrar-e2e", frozenset({Role.REGISTRAR}))
    downstream = GrpcDownstream({"patient": platform.processes["patient"].address})
    try:
        call = DownstreamCall("patient", rpc, {"request_id": str(uuid.uuid4()), **values})
        answer = await downstream.call(call, issuer.mint(registrar, audience="clinical-patient"))
        assert answer.status == "OK", answer.message
    finally:
        await downstream.close()


async def panel_export(http: httpx.AsyncClient, fhir_base: str, member: str,
                       folder: Path) -> Path:  # fmt: skip
    """The folder of a Group export of ``member``'s panel, once the patient service shows all
    three (its care-team read model follows the events): one folder per try."""
    for attempt in range(60):
        tried = folder / f"try-{attempt}"
        try:
            manifest = await download_export(http, f"{fhir_base}/Group/{member}", tried,
                                             query="_type=Patient")  # fmt: skip
        except BulkExportError:  # 404: the panel is not projected yet
            manifest = {"output": []}
        if [o["count"] for o in manifest["output"]] == [3]:
            return tried
        await asyncio.sleep(1)
    raise AssertionError("the Group export never held the panel's three patients")


def exported(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Each type's lines, every one checked by its R4B model."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.ndjson")):
        if path.stem in {"import-provenance", "OperationOutcome"}:
            continue
        for line in path.read_text().splitlines():
            resource = json.loads(line)
            assert resource["resourceType"] == path.stem
            get_fhir_model_class(path.stem).model_validate(resource)
            lines.setdefault(path.stem, []).append(resource)
    return lines


def comparable(resource: Mapping[str, Any], ids: Mapping[str, str]) -> str:
    """A resource as the record's contents: ids mapped to the source's, the platform's own
    stamps (versions, who and when it recorded) left out."""
    kept = {k: v for k, v in resource.items() if k not in _STAMPS}
    if resource["resourceType"] == "Patient":
        kept["identifier"] = [i for i in kept.get("identifier", ())
                              if i["system"] != SOURCE_SYSTEM]  # fmt: skip
    # A signature's who and when are the importing clinician's, now: that it was signed counts.
    kept["extension"] = [e if "order-signature" not in e["url"] else {"url": e["url"]}
                         for e in resource.get("extension", ())]  # fmt: skip
    return _RECORD_ID.sub(lambda m: ids.get(m[0], m[0]), json.dumps(kept, sort_keys=True))


async def test_export_of_1000_patients_reimported_into_a_fresh_stack_is_the_same(
    servers: ServerEndpoints, keycloak: Keycloak, tmp_path: Path
) -> None:
    clinician = ClinicianLogin(keycloak)
    lab = keycloak.user_token("lab", "user/*.cruds")
    source_folder, target_folder = tmp_path / "source", tmp_path / "target"
    first, second = tmp_path / "export-1", tmp_path / "export-2"
    for folder in (source_folder, target_folder):
        folder.mkdir()
    async with stack(servers, keycloak, source_folder) as source:
        async with httpx.AsyncClient(base_url=source.base_url, timeout=60) as http:
            patient_ids = await seed(http, clinician, lab)
        await as_registrar(source, source_folder, "ForgetPatient",
                           {"patient_id": patient_ids[-1], "reason": "erasure e2e"})  # fmt: skip
        member = f"panel-{uuid.uuid4().hex}"
        for patient_id in patient_ids[:3]:
            await as_registrar(source, source_folder, "AssignCareTeamMember",
                               {"patient_id": patient_id, "member_subject": member})  # fmt: skip
        bulk = keycloak.client_token("system/*.rs", client_id=BULK_CLIENT)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {bulk}"},
                                     timeout=60) as http:  # fmt: skip
            manifest = await download_export(http, source.fhir_base, first)
            panel_folder = await panel_export(http, source.fhir_base, member, tmp_path / "panel")
        panel = {p["id"] for p in exported(panel_folder)["Patient"]}
        assert panel == set(patient_ids[:3])
    assert manifest["error"] == []
    before = exported(first)
    counts = {kind: len(lines) for kind, lines in before.items()}
    assert counts["Patient"] == PATIENTS - 1  # the forgotten one is never exported
    assert patient_ids[-1] not in json.dumps(before)
    assert counts["ServiceRequest"] == PATIENTS - 1 + len(range(0, PATIENTS - 1, 10))
    assert counts["DiagnosticReport"] == counts["Observation"] == PATIENTS - 1
    assert {o["type"]: o["count"] for o in manifest["output"]} == counts

    async with stack(servers, keycloak, target_folder) as target:
        async with httpx.AsyncClient(base_url=target.base_url, timeout=60) as http:
            importer = FhirImport(http, clinician_token=clinician,
                                  lab_token=keycloak.user_token("lab", "user/*.cruds"))  # fmt: skip
            report = await importer.run(first)
        assert report.failures == []
        bulk = keycloak.client_token("system/*.rs", client_id=BULK_CLIENT)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {bulk}"},
                                     timeout=60) as http:  # fmt: skip
            await download_export(http, target.fhir_base, second)
    after = exported(second)
    assert {kind: len(lines) for kind, lines in after.items()} == counts
    ids = {new.rpartition("/")[2]: old.rpartition("/")[2]
           for old, new in json.loads((first / "id-map.json").read_text()).items()}  # fmt: skip
    for kind in counts:
        assert Counter(comparable(r, ids) for r in after[kind]) == Counter(
            comparable(r, {}) for r in before[kind]
        ), kind
    # Provenance kept: each new Patient names its source record, and the import's Provenance
    # names each record's source in the first stack.
    sources = {i["value"] for p in after["Patient"] for i in p["identifier"]
               if i["system"] == SOURCE_SYSTEM}  # fmt: skip
    assert sources == {f"{source.fhir_base}/Patient/{p['id']}" for p in before["Patient"]}
    lines = (first / "import-provenance.ndjson").read_text().splitlines()
    provenance = [json.loads(line) for line in lines]
    for resource in provenance:
        get_fhir_model_class("Provenance").model_validate(resource)
    assert (
        len(provenance) == counts["Patient"] + counts["ServiceRequest"] + counts["DiagnosticReport"]
    )
