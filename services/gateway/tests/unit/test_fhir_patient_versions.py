"""Patient versions over fake services: ``_at`` on read, ``Last-Modified`` and
``meta.lastUpdated`` from ``recorded_at``, and history entries carrying each version's contents
with who/why in ``meta`` when the caller may read the record."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from gateway.entrypoints.fhir.provenance import SUBJECT_SYSTEM, VERSION_PROVENANCE
from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome

pytestmark = pytest.mark.unit

PATIENT_ID = str(uuid.uuid4())
CLAIMS = {"sub": "u-1", "azp": "app-a", "realm_access": {"roles": ["registrar", "auditor"]}}
TOKENS = {"both": {**CLAIMS, "scope": "user/*.rs"}}
BEARER = {"authorization": "Bearer both"}


def record(version: int) -> dict[str, Any]:
    return {"patient_id": PATIENT_ID, "version": str(version),
            "recorded_at": "2026-12-07T10:03:01.250Z",
            "demographics": {"name": {"family": "Okafor", "given": ["Ada"]},
                             "birth_date": "1990-01-02"}}  # fmt: skip


def change(version: int, event_type: str) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": "Patient",
            "aggregate_id": PATIENT_ID, "aggregate_version": str(version),
            "recorded_at": f"2026-12-07T10:0{version}:01Z",
            "actor": {"subject": "registrar-1", "roles": ["registrar"]},
            "purpose_of_use": "PURPOSE_OF_USE_TREAT"}  # fmt: skip


@pytest.fixture
def services() -> FakeServices:
    events = [change(1, "PatientRegistered"), change(2, "PatientMatchAssessed"),
              change(3, "DemographicsUpdated")]  # fmt: skip
    return FakeServices({
        "GetPatient": [DownstreamAnswer("OK", body={"patient": record(3)})],
        "History": [DownstreamAnswer("OK", body={"changes": events})],
    })  # fmt: skip


@pytest.fixture
async def client(services: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(services, TOKENS) as http:
        yield http


async def test_read_at_an_instant_asks_for_the_version_current_then(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    at = {"_at": "2026-12-07T11:03:01.5+01:00"}
    answer = await client.get(f"/Patient/{PATIENT_ID}", params=at, headers=BEARER)
    assert answer.status_code == 200, answer.text
    assert services.calls[-1].request["as_of"] == "2026-12-07T10:03:01.500000Z"
    assert answer.json()["meta"]["lastUpdated"] == "2026-12-07T10:03:01.250Z"
    assert answer.headers["last-modified"] == "Mon, 07 Dec 2026 10:03:01 GMT"
    Patient.model_validate(answer.json())


@pytest.mark.parametrize("at", ["2026-12-07", "2026-12-07T10:00:00", "yesterday",
                                "2026-13-07T10:00:00Z", ""])  # fmt: skip
async def test_an_at_that_is_not_an_instant_with_a_zone_is_a_400_naming_it(
    client: httpx.AsyncClient, services: FakeServices, at: str
) -> None:
    refused = outcome(await client.get(f"/Patient/{PATIENT_ID}", params={"_at": at},
                                       headers=BEARER), 400)  # fmt: skip
    assert refused.issue[0].expression == ["_at"]
    assert services.calls == []


async def test_a_record_not_recorded_yet_at_the_instant_is_404(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.answers["GetPatient"] = [DownstreamAnswer("NOT_FOUND", "patient not found")]
    outcome(await client.get(f"/Patient/{PATIENT_ID}", params={"_at": "2020-01-01T00:00:00Z"},
                             headers=BEARER), 404)  # fmt: skip


async def test_history_entries_carry_each_versions_contents_and_who_made_it(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}/_history", headers=BEARER)
    assert answer.status_code == 200, answer.text
    Bundle.model_validate(answer.json())
    entries = answer.json()["entry"]
    # The match assessment changes nothing a Patient shows: no version of it.
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"1"']
    asked = sorted(c.request["version"] for c in services.calls if c.method == "GetPatient")
    assert asked == [1, 3]
    for entry in entries:
        Patient.model_validate(entry["resource"])
        meta = entry["resource"]["meta"]
        assert meta["lastUpdated"] == entry["response"]["lastModified"]
        [who] = [x for x in meta["extension"] if x["url"] == VERSION_PROVENANCE]
        parts = {p["url"]: p for p in who["extension"]}
        assert parts["author"]["valueIdentifier"] == {"system": SUBJECT_SYSTEM,
                                                      "value": "registrar-1"}  # fmt: skip
        assert parts["reason"]["valueCoding"]["code"] == "TREAT"
        assert parts["provenance"]["valueReference"]["reference"].startswith("Provenance/")
