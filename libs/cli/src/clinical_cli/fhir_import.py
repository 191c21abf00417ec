"""Importing a Bulk Data export folder (as `clinical_cli.fhir_export` writes it) into another stack
through its public API (docs/fhir-bulk-export.md).

The import registers each Patient (FHIR create, with an identifier naming the source record),
places each ServiceRequest as a draft, signs the ones that were signed (an MFA login's token)
and revokes the ones that were revoked, and posts each result through ``/api/v1/results``
(a laboratory token), amending or correcting it as the source was. The platform stamps its own
actors and times on what it records (the importing users, now); where each record came from
and who made it there is kept beside the import: ``import-provenance.ndjson`` (a FHIR
Provenance per imported record, its source as an entity) and ``id-map.json``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx

from clinical_cli.fhir_export import FHIR_JSON

SOURCE_SYSTEM = "urn:clinical-platform:source-record"
EXPORTED = ("Patient", "ServiceRequest", "DiagnosticReport", "Observation")
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
_PATIENT_KEPT = ("identifier", "name", "telecom", "gender", "birthDate", "address")
_AMENDED = {"amended": "REVISION_KIND_AMENDMENT", "corrected": "REVISION_KIND_CORRECTION"}
_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


@dataclass
class ImportReport:
    """What an import made: ``created`` per type, the old→new ids, the failures (type, old id,
    HTTP status: no record content)."""

    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXPORTED, 0))
    ids: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class FhirImport:
    """Imports an export folder through a gateway (``http`` has the gateway's root as base)."""

    http: httpx.AsyncClient
    # Registers patients, places, signs (an MFA login) and revokes orders; a callable gives a
    # fresh one per request (a signature needs an MFA login of the last few minutes).
    clinician_token: str | Callable[[], str]
    lab_token: str  # posts and amends results
    concurrency: int = 8
    report: ImportReport = field(default_factory=ImportReport)
    _provenance: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, folder: Path) -> ImportReport:
        """Import ``folder`` (as `download_export` writes it); write the provenance beside it."""
        manifest = json.loads(await anyio.Path(folder / "manifest.json").read_text())
        source = str(manifest["request"]).split("/$export")[0].split("/Patient")[0]
        source = source.split("/Group/")[0]
        await self._each(_lines(folder / "Patient.ndjson"), lambda p: self._patient(p, source))
        await self._each(_lines(folder / "ServiceRequest.ndjson"),
                         lambda o: self._order(o, source))  # fmt: skip
        observations = _observations_by_result(folder / "Observation.ndjson")
        await self._each(
            _lines(folder / "DiagnosticReport.ndjson"),
            lambda r: self._result(r, observations.get(r["id"], []), source),
        )
        self._write_provenance(folder)
        return self.report

    async def _each(self, lines: Iterator[dict[str, Any]],
                    handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:  # fmt: skip
        limit = asyncio.Semaphore(self.concurrency)

        async def one(line: dict[str, Any]) -> None:
            async with limit:
                await handle(line)

        pending: set[asyncio.Task[None]] = set()
        for line in lines:  # a bounded window of tasks: files may be larger than memory
            pending.add(asyncio.create_task(one(line)))
            if len(pending) >= self.concurrency * 4:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.gather(*pending)

    async def _patient(self, patient: Mapping[str, Any], source: str) -> None:
        body = {k: patient[k] for k in _PATIENT_KEPT if k in patient}
        body["identifier"] = [
            *(i for i in body.get("identifier", ()) if i.get("system") != SOURCE_SYSTEM),
            {"system": SOURCE_SYSTEM, "value": f"{source}/Patient/{patient['id']}"},
        ]
        created = await self._fhir("POST", "/Patient", {"resourceType": "Patient", **body})
        self._made("Patient", patient["id"], created, source)

    async def _order(self, order: Mapping[str, Any], source: str) -> None:
        patient = self.report.ids.get(f"Patient/{_id_of(order['subject'])}")
        if patient is None:
            self.report.failures.append(("ServiceRequest", order["id"], 0))
            return
        draft = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
                 "subject": {"reference": patient},
                 "code": {"coding": [{k: c[k] for k in ("system", "code")}
                                     for c in order["code"]["coding"]]},
                 "reasonCode": order.get("reasonCode", [])}  # fmt: skip
        if "priority" in order:
            draft["priority"] = order["priority"]
        placed = await self._fhir("POST", "/ServiceRequest", draft)
        if placed.status_code != 201:
            self._made("ServiceRequest", order["id"], placed, source)
            return
        order_id = _location_id(placed)
        answer = placed
        if order["status"] in {"active", "completed"} or _signed(order):
            answer = await self._fhir("POST", f"/ServiceRequest/{order_id}/$sign", None)
        reason = _revocation_reason(order)
        if order["status"] == "revoked" and answer.is_success:
            revoked = {
                **draft,
                "id": order_id,
                "status": "revoked",
                "extension": [
                    {"url": STATUS_REASON, "valueCodeableConcept": {"text": reason or "revoked"}}
                ],
            }
            answer = await self._fhir("PUT", f"/ServiceRequest/{order_id}", revoked)
        self._made("ServiceRequest", order["id"], answer, source, new_id=order_id,
                   version=_location_version(answer))  # fmt: skip

    async def _result(self, report: Mapping[str, Any], observations: list[dict[str, Any]],
                      source: str) -> None:  # fmt: skip
        order_ref = report.get("basedOn", [{}])[0].get("reference", "")
        order = self.report.ids.get(order_ref)
        if order is None or not observations:
            self.report.failures.append(("DiagnosticReport", report["id"], 0))
            return
        order_id, _, version = order.partition("/")[2].partition("@")
        body: dict[str, Any] = {
            "request_id": str(uuid.uuid4()), "order_id": order_id,
            "observations": [_posted_observation(o) for o in observations],
            "order_min_version": version or "0",
        }  # fmt: skip
        if "effectiveDateTime" in report:
            body["effective_at"] = report["effectiveDateTime"]
        posted = await self._api("POST", "/api/v1/results", body)
        result_id = str(posted.json().get("result_id", "")) if posted.is_success else ""
        if result_id and report.get("status") in _AMENDED:
            posted = await self._api("POST", f"/api/v1/results/{result_id}/amend", {
                "request_id": str(uuid.uuid4()), "kind": _AMENDED[report["status"]],
                "observations": body["observations"],
                "reason": f"re-imported: the source result was {report['status']}",
            })  # fmt: skip
        self._made("DiagnosticReport", report["id"], posted, source, new_id=result_id)
        if posted.is_success:
            self.report.created["Observation"] += len(observations)

    async def _fhir(self, method: str, path: str, body: Mapping[str, Any] | None,
                    ) -> httpx.Response:  # fmt: skip
        token = (
            self.clinician_token
            if isinstance(self.clinician_token, str)
            else (self.clinician_token())
        )
        headers = {"Authorization": f"Bearer {token}", "Prefer": "return=minimal",
                   "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}  # fmt: skip
        return await self.http.request(method, f"/fhir/r4{path}", headers=headers,
                                       content=None if body is None else _dumps(body))  # fmt: skip

    async def _api(self, method: str, path: str, body: Mapping[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.lab_token}", "Content-Type": "application/json"}
        return await self.http.request(method, path, headers=headers, content=_dumps(body))

    def _made(self, kind: str, old_id: str, answer: httpx.Response, source: str, *,
              new_id: str = "", version: str = "") -> None:  # fmt: skip
        if not answer.is_success:
            self.report.failures.append((kind, old_id, answer.status_code))
            return
        new_id = new_id or _location_id(answer)
        # An order's entry keeps its signed version: its result waits for the service to see it.
        self.report.ids[f"{kind}/{old_id}"] = f"{kind}/{new_id}" + (
            f"@{version}" if version else ""
        )
        self.report.created[kind] += 1
        self._provenance.append(_provenance(kind, new_id, f"{source}/{kind}/{old_id}"))

    def _write_provenance(self, folder: Path) -> None:
        with (folder / "import-provenance.ndjson").open("w") as out:
            for resource in self._provenance:
                out.write(json.dumps(resource, separators=(",", ":")) + "\n")
        ids = {old: new.partition("@")[0] for old, new in self.report.ids.items()}
        (folder / "id-map.json").write_text(json.dumps(ids, indent=1, sort_keys=True))


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            if line.strip():
                # Decimals as written: 5.40 stays 5.40 (a float would post 5.4).
                yield json.loads(line, parse_float=Decimal)


def _observations_by_result(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Each result's observations in order (``<result id>-<n>``)."""
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for observation in _lines(path):
        result_id, _, position = str(observation["id"]).rpartition("-")
        grouped.setdefault(result_id, []).append((int(position), observation))
    return {k: [o for _, o in sorted(v, key=lambda p: p[0])] for k, v in grouped.items()}


def _posted_observation(observation: Mapping[str, Any]) -> dict[str, Any]:
    """An exported Observation as the results service's Observation (protobuf JSON)."""
    posted: dict[str, Any] = {"code": observation["code"]["coding"][0]["code"]}
    if quantity := observation.get("valueQuantity"):
        posted["quantity"] = {"value": str(quantity["value"]), "unit": quantity.get("code", "")}
    elif concept := observation.get("valueCodeableConcept"):
        coding = concept["coding"][0]
        posted["coded"] = {k: coding[k] for k in ("system", "code", "display") if k in coding}
    elif "valueString" in observation:
        posted["text"] = observation["valueString"]
    if ranges := observation.get("referenceRange"):
        posted["reference_range"] = {
            bound: str(ranges[0][bound]["value"]) for bound in ("low", "high") if bound in ranges[0]
        }
    return posted


def _provenance(kind: str, new_id: str, source: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance", "id": str(uuid.uuid4()),
        "target": [{"reference": f"{kind}/{new_id}"}],
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "activity": {"coding": [{"system": _DATA_OPERATION, "code": "CREATE"}],
                     "text": "imported from a Bulk Data export"},
        "agent": [{"who": {"display": "clinical fhir import"}}],
        "entity": [{"role": "source", "what": {"reference": source}}],
    }  # fmt: skip


def _signed(order: Mapping[str, Any]) -> bool:
    return any("order-signature" in e.get("url", "") for e in order.get("extension", ()))


def _revocation_reason(order: Mapping[str, Any]) -> str:
    for extension in order.get("extension", ()):
        if extension.get("url") == STATUS_REASON:
            return str(extension.get("valueCodeableConcept", {}).get("text", ""))
    return ""


def _id_of(reference: Mapping[str, Any]) -> str:
    return str(reference.get("reference", "")).rpartition("/")[2]


def _location_id(answer: httpx.Response) -> str:
    # .../ServiceRequest/<id>/_history/<version>
    location = str(answer.headers.get("Location", ""))
    return location.split("/_history/", maxsplit=1)[0].rpartition("/")[2]


def _location_version(answer: httpx.Response) -> str:
    return str(answer.headers.get("Location", "")).rpartition("/_history/")[2]


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, default=_decimal).encode()


def _decimal(value: object) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(type(value).__name__)
