"""``_summary``, ``_elements`` and ``_format`` on read, vread, search and history, through the
gateway to the real patient and audit services, with Keycloak's registrar and auditor (the
stack of test_fhir_history). Whatever the gateway answers is checked with the R4B models.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from gateway.entrypoints.fhir.subsetting import SUBSETTED

from . import test_fhir_history as history
from .test_fhir_history import Stack, history_of, registered

pytestmark = pytest.mark.integration

# test_fhir_history's fixtures, used here by name.
stack, registrar_token, auditor = history.stack, history.registrar_token, history.auditor


def subset_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    body = dict(answer.json())
    assert SUBSETTED in body["meta"]["tag"]
    return body


def refusal(answer: httpx.Response, status: int) -> OperationOutcome:
    assert answer.status_code == status, answer.text
    return OperationOutcome.model_validate(answer.json())


async def test_read_and_vread_answer_the_summary_or_the_elements_asked_for(
    stack: Stack, registrar_token: str
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Ibe{secrets.token_hex(6)}")
    whole = (await stack.client.get(f"Patient/{patient_id}", headers=registrar)).json()
    version = whole["meta"]["versionId"]

    summary = subset_of(await stack.client.get(
        f"Patient/{patient_id}", params={"_summary": "true"}, headers=registrar
    ))  # fmt: skip
    Patient.model_validate(summary)
    assert summary["name"] == whole["name"]
    assert summary["meta"]["versionId"] == version
    elements = subset_of(await stack.client.get(
        f"Patient/{patient_id}/_history/{version}", params={"_elements": "gender,birthDate"},
        headers=registrar,
    ))  # fmt: skip
    assert set(elements) == {"resourceType", "id", "meta", "gender", "birthDate"}
    assert elements["birthDate"] == whole["birthDate"]
    data = subset_of(await stack.client.get(
        f"Patient/{patient_id}", params={"_summary": "data", "_format": "json"},
        headers=registrar,
    ))  # fmt: skip
    assert "text" not in data
    untouched = await stack.client.get(
        f"Patient/{patient_id}", params={"_summary": "false"}, headers=registrar
    )
    assert untouched.json() == whole


async def test_search_counts_and_subsets_each_match(stack: Stack, registrar_token: str) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    family = f"Onyeka{secrets.token_hex(6)}"
    for _ in range(2):
        await registered(stack.client, registrar, family)
    counted = await stack.client.get(
        "Patient", params={"family": family, "_summary": "count"}, headers=registrar
    )
    assert counted.status_code == 200, counted.text
    Bundle.model_validate(counted.json())
    assert counted.json()["total"] == 2
    assert "entry" not in counted.json()
    named = await stack.client.get("Patient", params={"family": family, "_elements": "name"},
                                   headers={**registrar, "prefer": "handling=strict"})  # fmt: skip
    assert named.status_code == 200, named.text
    Bundle.model_validate(named.json())
    for entry in named.json()["entry"]:
        assert set(entry["resource"]) == {"resourceType", "id", "meta", "name"}
        assert SUBSETTED in entry["resource"]["meta"]["tag"]


async def test_history_counts_its_versions(
    stack: Stack, registrar_token: str, auditor: dict[str, str]
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Uche{secrets.token_hex(6)}")
    versions = (await history_of(stack.client, auditor, patient_id, versions=1))["total"]
    counted = await stack.client.get(
        f"Patient/{patient_id}/_history", params={"_summary": "count"}, headers=auditor
    )
    assert counted.status_code == 200, counted.text
    Bundle.model_validate(counted.json())
    assert counted.json()["type"] == "history"
    assert counted.json()["total"] == versions
    assert "entry" not in counted.json()


async def test_xml_and_unknown_summaries_are_refused_before_any_read(
    stack: Stack, registrar_token: str
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Ani{secrets.token_hex(6)}")
    path = f"Patient/{patient_id}"
    xml = await stack.client.get(path, params={"_format": "xml"}, headers=registrar)
    assert refusal(xml, 406).issue[0].code == "not-supported"
    accept = {**registrar, "accept": "application/fhir+xml"}
    assert refusal(await stack.client.get(path, headers=accept), 406)
    unknown = await stack.client.get(path, params={"_summary": "maybe"}, headers=registrar)
    issue = refusal(unknown, 400).issue[0]
    assert (issue.expression, "_summary" in (issue.diagnostics or "")) == (["_summary"], True)
    metadata = (await stack.client.get("metadata")).json()
    assert metadata["format"] == ["json"]
