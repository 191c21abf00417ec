"""Versions of ServiceRequest and DiagnosticReport through the gateway over the real orders,
results and audit services: vread of every version, ``_at``, ``_history`` with each version's
contents, ``Last-Modified``; every resource checked with the ``fhir.resources`` R4B models."""

# The stack's fixture (fhir) is imported, then taken by parameters of its name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.servicerequest import ServiceRequest

from .order_result_stack import (
    amended_result,
    answered,
    auth,
    fhir,  # noqa: F401 - a fixture
    placed_order,
    posted_result,
    quantity,
    realm_user,
    revoked_order,
    signed_order,
)

pytestmark = pytest.mark.integration

PATIENT_ID = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # registered by the fixture


@pytest.fixture
def patient_id() -> str:
    """The patient the stack registers (its orders are taken)."""
    return PATIENT_ID


@pytest.fixture(scope="module")
def auditing_lab(keycloak: Keycloak) -> Iterator[str]:
    """An auditor who is laboratory staff too: reads histories and the records' contents."""
    with realm_user(keycloak, "auditor", "lab") as username:
        yield keycloak.user_token(username, "user/*.rs")


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def test_an_orders_every_version_is_read_and_its_history_carries_their_contents(
    fhir: httpx.AsyncClient, clinician_otp_token: str, auditing_lab: str
) -> None:
    clinician = clinician_otp_token
    placed = await placed_order(fhir, clinician, PATIENT_ID)
    order_id = placed["id"]
    signed = await signed_order(fhir, clinician, order_id)
    await asyncio.sleep(0.2)
    between = now()
    await asyncio.sleep(0.2)
    await revoked_order(fhir, clinician, signed)

    first = await fhir.get(f"ServiceRequest/{order_id}/_history/1", headers=auth(clinician))
    assert first.status_code == 200, first.text
    assert ServiceRequest.model_validate(first.json()).status == "draft"
    assert first.headers["etag"] == 'W/"1"'
    assert first.headers["last-modified"].endswith("GMT")
    assert first.json()["meta"]["lastUpdated"]
    at = await fhir.get(f"ServiceRequest/{order_id}", params={"_at": between},
                        headers=auth(clinician))  # fmt: skip
    assert at.status_code == 200, at.text
    assert (ServiceRequest.model_validate(at.json()).status, at.headers["etag"]) == (
        "active", 'W/"2"'
    )  # fmt: skip
    current = await fhir.get(f"ServiceRequest/{order_id}", headers=auth(clinician))
    assert ServiceRequest.model_validate(current.json()).status == "revoked"
    beyond = await fhir.get(f"ServiceRequest/{order_id}/_history/4", headers=auth(clinician))
    assert beyond.status_code == 404, beyond.text
    OperationOutcome.model_validate(beyond.json())
    before = await fhir.get(f"ServiceRequest/{order_id}", params={"_at": "2001-01-01T00:00:00Z"},
                            headers=auth(clinician))  # fmt: skip
    assert before.status_code == 404, before.text

    history = await answered(
        lambda: fhir.get(f"ServiceRequest/{order_id}/_history", headers=auth(auditing_lab)),
        until=lambda a: a.status_code == 200 and a.json().get("total", 0) >= 3,
    )  # fmt: skip
    assert history.status_code == 200, history.text
    bundle = history.json()
    Bundle.model_validate(bundle)
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    contents = [ServiceRequest.model_validate(e["resource"]) for e in bundle["entry"]]
    assert [c.status for c in contents] == ["revoked", "active", "draft"]
    assert [c.meta.versionId for c in contents] == ["3", "2", "1"]  # type: ignore[union-attr]


async def test_an_amended_results_first_version_is_final_with_the_first_values(
    fhir: httpx.AsyncClient, keycloak: Keycloak, clinician_otp_token: str, auditing_lab: str
) -> None:
    placed = await placed_order(fhir, clinician_otp_token, PATIENT_ID)
    signed = await signed_order(fhir, clinician_otp_token, placed["id"])
    lab = keycloak.user_token("lab", "user/*.rs user/Observation.cruds")
    result_id = await posted_result(fhir, lab, signed, [quantity("2345-7", "182", "mg/dL")])
    first_read = await answered(lambda: fhir.get(f"DiagnosticReport/{result_id}",
                                                 headers=auth(lab)))  # fmt: skip
    assert first_read.status_code == 200, first_read.text
    await asyncio.sleep(0.2)
    between = now()
    await asyncio.sleep(0.2)
    version = await amended_result(fhir, lab, result_id, [quantity("2345-7", "95", "mg/dL")])
    assert version == 2

    async def observation(path: str, **params: str) -> tuple[str, str, str]:
        """An Observation's status, value and version (its result's)."""
        answer = await fhir.get(path, params=params, headers=auth(lab))
        assert answer.status_code == 200, answer.text
        read = Observation.model_validate(answer.json())
        value = read.valueQuantity.value  # type: ignore[union-attr]
        return str(read.status), str(value), answer.headers["etag"]

    first = await fhir.get(f"DiagnosticReport/{result_id}/_history/1", headers=auth(lab))
    assert first.status_code == 200, first.text
    assert DiagnosticReport.model_validate(first.json()).status == "final"
    assert first.json()["meta"]["versionId"] == "1"
    current = await answered(
        lambda: fhir.get(f"DiagnosticReport/{result_id}", headers=auth(lab)),
        until=lambda a: a.status_code == 200 and a.json()["meta"]["versionId"] == "2",
    )  # fmt: skip
    assert DiagnosticReport.model_validate(current.json()).status == "amended"
    at = await fhir.get(f"DiagnosticReport/{result_id}", params={"_at": between},
                        headers=auth(lab))  # fmt: skip
    assert (at.json()["status"], at.json()["meta"]["versionId"]) == ("final", "1")
    # An Observation's versions are its result's: the first values, then the amended ones.
    glucose = f"Observation/{result_id}-1"
    assert await observation(f"{glucose}/_history/1") == ("final", "182", 'W/"1"')
    assert await observation(glucose) == ("amended", "95", 'W/"2"')
    assert await observation(glucose, _at=between) == ("final", "182", 'W/"1"')

    history = await answered(
        lambda: fhir.get(f"DiagnosticReport/{result_id}/_history", headers=auth(auditing_lab)),
        until=lambda a: a.status_code == 200 and a.json().get("total", 0) >= 2,
    )  # fmt: skip
    assert history.status_code == 200, history.text
    Bundle.model_validate(history.json())
    reports = [DiagnosticReport.model_validate(e["resource"]) for e in history.json()["entry"]]
    assert [r.status for r in reports] == ["amended", "final"]
    # Who, when and why of each version.
    provenances = await fhir.get("Provenance", params={"target": f"DiagnosticReport/{result_id}"},
                                 headers=auth(auditing_lab))  # fmt: skip
    assert provenances.status_code == 200, provenances.text
    recorded = [Provenance.model_validate(e["resource"]) for e in provenances.json()["entry"]]
    assert [p.activity.text for p in recorded] == ["ResultPosted", "ResultAmended"]  # type: ignore[union-attr]
