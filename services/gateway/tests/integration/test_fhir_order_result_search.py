"""Searching ServiceRequest, DiagnosticReport and Observation by code, date and status through
the gateway over the real orders and results services: exactly the matching records, applied
by the services (full pages), totals past one page for ``_summary=count``, precise 400s."""

# The stack's fixture (fhir) is imported, then taken by parameters of its name.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from .order_result_stack import (
    LOINC,
    amended_result,
    answered,
    auth,
    fhir,  # noqa: F401 - a fixture
    placed_order,
    posted_result,
    quantity,
    signed_order,
)

pytestmark = pytest.mark.integration

PATIENT_ID = str(uuid.uuid4())


@pytest.fixture
def patient_id() -> str:
    """The patient the stack registers (its orders are taken)."""
    return PATIENT_ID


async def found(fhir: httpx.AsyncClient, token: str, kind: str,
                **params: str | list[str]) -> tuple[set[str], dict[str, Any]]:  # fmt: skip
    """The ids a search's first page holds, and its Bundle (validated)."""
    answer = await fhir.get(kind, params={"patient": PATIENT_ID, **params}, headers=auth(token))
    assert answer.status_code == 200, answer.text
    Bundle.model_validate(answer.json())
    return {e["resource"]["id"] for e in answer.json().get("entry", ())}, answer.json()


def refused(answer: httpx.Response) -> list[str]:
    """A 400's expression."""
    assert answer.status_code == 400, answer.text
    expression = OperationOutcome.model_validate(answer.json()).issue[0].expression or []
    return [str(path) for path in expression]


async def test_orders_are_found_by_code_and_authored_and_counted_past_one_page(
    fhir: httpx.AsyncClient, clinician_otp_token: str
) -> None:
    clinician = clinician_otp_token
    glucose = {(await placed_order(fhir, clinician, PATIENT_ID))["id"] for _ in range(3)}
    hemoglobin = await placed_order(fhir, clinician, PATIENT_ID, code="718-7")
    authored = datetime.fromisoformat(hemoglobin["authoredOn"])
    just_before = (authored - timedelta(milliseconds=1)).isoformat()

    for code in ("2345-7", f"{LOINC}|2345-7"):
        ids, bundle = await found(fhir, clinician, "ServiceRequest", code=code, _count="2")
        assert ids < glucose
        assert bundle["total"] == 3
    assert (await found(fhir, clinician, "ServiceRequest", code="718-7"))[0] == {hemoglobin["id"]}
    for nothing in ("|2345-7", "http://snomed.info/sct|2345-7"):
        assert (await found(fhir, clinician, "ServiceRequest", code=nothing))[1]["total"] == 0
    since = await found(fhir, clinician, "ServiceRequest", authored=f"gt{just_before}")
    assert since[0] == {hemoglobin["id"]}
    until = await found(fhir, clinician, "ServiceRequest", authored=f"lt{just_before}")
    assert until[0] == glucose
    today = authored.astimezone(UTC).date().isoformat()
    both = await found(fhir, clinician, "ServiceRequest", authored=[f"ge{today}", f"le{today}"])
    assert both[0] == {*glucose, hemoglobin["id"]}
    assert (await found(fhir, clinician, "ServiceRequest", authored=f"lt{today}"))[0] == set()

    counted = await fhir.get("ServiceRequest", headers=auth(clinician), params={
        "patient": PATIENT_ID, "_count": "1", "_summary": "count"})  # fmt: skip
    assert counted.status_code == 200, counted.text
    assert Bundle.model_validate(counted.json()).total == 4
    assert "entry" not in counted.json()

    for params, parameter in (
        ({"authored": "ne2026-12-01"}, "authored"),
        ({"authored": "ge2026-13-01"}, "authored"),
        ({"authored": "2026-12-01T10:00:00"}, "authored"),  # an instant without a zone
        ({"authored": ["ge2026-12-02", "le2026-12-01"]}, "authored"),
        ({"authored": ["ge2026-12-01", "gt2026-12-02"]}, "authored"),
        ({"code": "a|b|c"}, "code"),
        ({"status": "on-hold"}, "status"),
    ):
        answer = await fhir.get("ServiceRequest", params={"patient": PATIENT_ID, **params},
                                headers=auth(clinician))  # fmt: skip
        assert refused(answer) == [parameter], params


async def test_reports_and_observations_are_found_by_code_date_and_status(
    fhir: httpx.AsyncClient, keycloak: Keycloak, clinician_otp_token: str
) -> None:
    lab = keycloak.user_token("lab", "user/*.rs user/Observation.cruds")
    week_ago = datetime.now(UTC) - timedelta(days=7)
    results: dict[str, str] = {}
    for name, observations, effective in (
        ("old glucose", [quantity("2345-7", "85", "mg/dL")], week_ago),
        ("glucose", [quantity("2345-7", "90", "mg/dL")], None),
        ("panel", [quantity("2345-7", "95", "mg/dL"), quantity("718-7", "14.1", "g/dL")], None),
        ("hemoglobin", [quantity("718-7", "13.9", "g/dL")], None),
    ):
        placed = await placed_order(fhir, clinician_otp_token, PATIENT_ID)
        signed = await signed_order(fhir, clinician_otp_token, placed["id"])
        fields = {"effective_at": effective.isoformat()} if effective else {}
        results[name] = await posted_result(fhir, lab, signed, observations, **fields)
    await amended_result(fhir, lab, results["hemoglobin"], [quantity("718-7", "12.9", "g/dL")])
    named = {result_id: name for name, result_id in results.items()}

    async def reports(**params: str | list[str]) -> tuple[set[str], int]:
        ids, bundle = await found(fhir, lab, "DiagnosticReport", **params)
        return {named[i] for i in ids}, bundle["total"]

    everything = await answered(
        lambda: fhir.get("DiagnosticReport", params={"patient": PATIENT_ID, "status": "amended"},
                         headers=auth(lab)),
        until=lambda a: a.status_code == 200 and a.json().get("total") == 1,
    )  # fmt: skip
    assert everything.json()["total"] == 1
    assert await reports(code="2345-7") == ({"old glucose", "glucose"}, 2)
    assert await reports(code=f"{LOINC}|11502-2") == ({"panel"}, 1)
    assert await reports(code="718-7", status="amended") == ({"hemoglobin"}, 1)
    # One report on the page, all three counted.
    first_final, final_total = await reports(status="final", _count="1")
    assert (len(first_final), final_total) == (1, 3)
    day_ago = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert await reports(date=f"lt{day_ago}") == ({"old glucose"}, 1)
    assert (await reports(date=f"ge{day_ago}", status="final"))[0] == {"glucose", "panel"}

    glucose_observations, _ = await found(fhir, lab, "Observation", code=f"{LOINC}|2345-7",
                                          date=f"ge{day_ago}")  # fmt: skip
    assert glucose_observations == {f"{results['glucose']}-1", f"{results['panel']}-1"}
    amended, _ = await found(fhir, lab, "Observation", status="amended")
    assert amended == {f"{results['hemoglobin']}-1"}

    for kind, params, parameter in (
        ("DiagnosticReport", {"status": "preliminary"}, "status"),
        ("DiagnosticReport", {"date": "sa2026-12-01"}, "date"),
        ("Observation", {"date": ["ge2026-12-01", "ge2026-12-02"]}, "date"),
        ("Observation", {"date": ["ge2026-12-01", "le2026-12-02", "lt2026-12-03"]}, "date"),
    ):
        answer = await fhir.get(kind, params={"patient": PATIENT_ID, **params},
                                headers=auth(lab))  # fmt: skip
        assert refused(answer) == [parameter], (kind, params)
