"""Patient versions, ``_at``, ``$match`` and ``Patient.link`` through the gateway over the real
patient and audit services and Keycloak (the stack of test_fhir_history.py). A throw-away
Keycloak user holding both the registrar and the auditor roles reads histories with contents.
Whatever the gateway answers is checked with the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from gateway.entrypoints.fhir.patient_match import MATCH_EXPLANATION, MATCH_GRADE
from gateway.entrypoints.fhir.provenance import VERSION_PROVENANCE

from . import test_fhir_history as history
from .order_result_stack import realm_user
from .test_fhir_history import FHIR, Stack, history_of, outcome, registered

pytestmark = pytest.mark.integration
# The history tests' stack and tokens, as fixtures of this module too.
stack, registrar_token, auditor = history.stack, history.registrar_token, history.auditor


@pytest.fixture(scope="module")
def records_auditor(keycloak: Keycloak) -> Iterator[dict[str, str]]:
    """A bearer of a user who audits and reads records: registrar and auditor."""
    with realm_user(keycloak, "registrar", "auditor") as username:
        yield {"authorization": f"Bearer {keycloak.user_token(username, 'user/*.cruds')}"}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _put(client: httpx.AsyncClient, headers: dict[str, str], patient_id: str,
               **changes: Any) -> httpx.Response:  # fmt: skip
    current = (await client.get(f"Patient/{patient_id}", headers=headers)).json()
    changed = {key: value for key, value in {**current, **changes}.items() if value is not None}
    return await client.put(f"Patient/{patient_id}", headers={**FHIR, **headers}, json=changed)


def _before(instant: str) -> str:
    at = datetime.fromisoformat(instant.replace("Z", "+00:00")) - timedelta(seconds=1)
    return at.isoformat()


async def test_history_after_register_two_updates_and_a_link_is_four_versions_readable_at_any_instant(  # noqa: E501 - one story, told whole
    stack: Stack, registrar_token: str, auditor: dict[str, str],
    records_auditor: dict[str, str],
) -> None:  # fmt: skip
    registrar = _bearer(registrar_token)
    pair = [await registered(stack.client, registrar, f"Eze{secrets.token_hex(6)}"),
            await registered(stack.client, registrar, f"Obi{secrets.token_hex(6)}")]  # fmt: skip
    patient_id, other_id = sorted(pair)  # the anchor records the link
    for birth_date in ("1979-11-24", "1979-11-25"):
        answer = await _put(stack.client, registrar, patient_id, birthDate=birth_date)
        assert answer.status_code == 200, answer.text
    link = [{"other": {"reference": f"Patient/{other_id}"}, "type": "seealso"}]
    linked = await _put(stack.client, registrar, patient_id, link=link)
    assert linked.status_code == 200, linked.text

    bundle = await history_of(stack.client, records_auditor, patient_id, versions=4)
    Bundle.model_validate(bundle)
    # Registering records the match assessment as version 2: no version of the resource.
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"5"', 'W/"4"', 'W/"3"',
                                                                'W/"1"']  # fmt: skip
    subject = (await stack.app.authenticate(registrar_token)).principal.subject
    for entry in bundle["entry"]:
        resource = entry["resource"]
        Patient.model_validate(resource)
        assert resource["meta"]["versionId"] == entry["response"]["etag"][3:-1]
        [who] = [x for x in resource["meta"]["extension"] if x["url"] == VERSION_PROVENANCE]
        parts = {p["url"]: p for p in who["extension"]}
        assert parts["author"]["valueIdentifier"]["value"] == subject
    birth_dates = [e["resource"]["birthDate"] for e in bundle["entry"]]
    assert birth_dates == ["1979-11-25", "1979-11-25", "1979-11-24", "1979-11-23"]
    assert "link" in bundle["entry"][0]["resource"]
    assert "link" not in bundle["entry"][1]["resource"]
    # An auditor who reads no records sees the same versions, without their contents.
    plain = await history_of(stack.client, auditor, patient_id, versions=4)
    assert len(plain["entry"]) == 4
    assert all("resource" not in e for e in plain["entry"])

    versions: dict[int, dict[str, Any]] = {}
    for version in (1, 2, 3, 4, 5):
        answer = await stack.client.get(f"Patient/{patient_id}/_history/{version}",
                                        headers=registrar)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.headers["etag"] == f'W/"{version}"'
        assert answer.headers["last-modified"]
        Patient.model_validate(answer.json())
        versions[version] = answer.json()
    assert versions[2]["birthDate"] == "1979-11-23"  # the assessment shows what v1 did
    outcome(await stack.client.get(f"Patient/{patient_id}/_history/9", headers=registrar), 404)

    middle = await stack.client.get(
        f"Patient/{patient_id}", params={"_at": versions[3]["meta"]["lastUpdated"]},
        headers=registrar,
    )  # fmt: skip
    assert middle.status_code == 200, middle.text
    assert (middle.json()["meta"]["versionId"], middle.json()["birthDate"]) == ("3", "1979-11-24")
    Patient.model_validate(middle.json())
    before = _before(versions[1]["meta"]["lastUpdated"])
    early = await stack.client.get(f"Patient/{patient_id}", params={"_at": before},
                                   headers=registrar)  # fmt: skip
    outcome(early, 404)
    for malformed in ("2026-12-07", "2026-12-07T10:00:00", "soon"):
        refused = await stack.client.get(f"Patient/{patient_id}", params={"_at": malformed},
                                         headers=registrar)  # fmt: skip
        assert outcome(refused, 400).issue[0].expression == ["_at"]


async def test_search_at_an_instant_finds_the_name_a_record_had_then(
    stack: Stack, registrar_token: str
) -> None:
    registrar = _bearer(registrar_token)
    then, later = f"Adaeze{secrets.token_hex(5)}", f"Nnamdi{secrets.token_hex(5)}"
    patient_id = await registered(stack.client, registrar, then)
    first = await stack.client.get(f"Patient/{patient_id}/_history/1", headers=registrar)
    at = first.json()["meta"]["lastUpdated"]
    renamed = await _put(stack.client, registrar, patient_id,
                         name=[{"family": later, "given": ["Chiamaka"]}])  # fmt: skip
    assert renamed.status_code == 200, renamed.text

    async def found(family: str, **extra: str) -> list[str]:
        answer = await stack.client.get("Patient", params={"family": family, **extra},
                                        headers=registrar)  # fmt: skip
        assert answer.status_code == 200, answer.text
        Bundle.model_validate(answer.json())
        assert answer.json()["total"] == len(answer.json().get("entry", []))
        return [e["resource"]["id"] for e in answer.json().get("entry", [])]

    assert await found(then, _at=at) == [patient_id]
    assert await found(later, _at=at) == []
    assert await found(later) == [patient_id]
    assert await found(then) == []
    counted = await stack.client.get("Patient", params={"family": later, "_summary": "count"},
                                     headers=registrar)  # fmt: skip
    assert counted.json()["total"] == 1


async def test_match_returns_the_registered_duplicate_scored_and_explained(
    stack: Stack, registrar_token: str
) -> None:
    registrar = _bearer(registrar_token)
    family = f"Okoro{secrets.token_hex(5)}"
    patient_id = await registered(stack.client, registrar, family)
    record = (await stack.client.get(f"Patient/{patient_id}", headers=registrar)).json()
    probe = {key: record[key] for key in ("name", "birthDate", "gender", "identifier")}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", **probe}},
        {"name": "count", "valueInteger": 5},
    ]}  # fmt: skip
    answer = await stack.client.post("Patient/$match", headers={**FHIR, **registrar}, json=body)
    assert answer.status_code == 200, answer.text
    Bundle.model_validate(answer.json())
    [entry] = [e for e in answer.json()["entry"] if e["resource"]["id"] == patient_id]
    assert entry["search"]["mode"] == "match"
    assert 0.9 < entry["search"]["score"] <= 1
    extensions = {x["url"]: x for x in entry["search"]["extension"]}
    assert extensions[MATCH_GRADE]["valueCode"] == "certain"
    fields = [x for x in extensions[MATCH_EXPLANATION]["extension"] if x["url"] == "field"]
    assert fields
    not_parameters = await stack.client.post("Patient/$match", headers={**FHIR, **registrar},
                                             json={"resourceType": "Patient"})  # fmt: skip
    outcome(not_parameters, 400)
    too_many = {**body, "parameter": [body["parameter"][0],
                                      {"name": "count", "valueInteger": 0}]}  # fmt: skip
    outcome(await stack.client.post("Patient/$match", headers={**FHIR, **registrar},
                                    json=too_many), 400)  # fmt: skip


async def test_link_and_unlink_through_patient_link_are_the_registrars(
    stack: Stack, registrar_token: str, keycloak: Keycloak
) -> None:
    registrar = _bearer(registrar_token)
    first = await registered(stack.client, registrar, f"Umeh{secrets.token_hex(5)}")
    second = await registered(stack.client, registrar, f"Ibe{secrets.token_hex(5)}")
    third = await registered(stack.client, registrar, f"Ani{secrets.token_hex(5)}")
    link = [{"other": {"reference": f"Patient/{second}"}, "type": "seealso"}]

    clinician = _bearer(keycloak.user_token("clinician-no-otp", "user/Patient.cruds"))
    refused = await stack.client.put(
        f"Patient/{first}", headers={**FHIR, **clinician},
        json={**(await stack.client.get(f"Patient/{first}", headers=registrar)).json(),
              "link": link},
    )  # fmt: skip
    outcome(refused, 403)
    assert "link" not in (await stack.client.get(f"Patient/{first}", headers=registrar)).json()

    two = [*link, {"other": {"reference": f"Patient/{third}"}, "type": "seealso"}]
    outcome(await _put(stack.client, registrar, first, link=two), 422)
    replaced = [{"other": {"reference": f"Patient/{second}"}, "type": "replaced-by"}]
    assert outcome(await _put(stack.client, registrar, first, link=replaced),
                   422).issue[0].expression == ["Patient.link[0].type"]  # fmt: skip
    unknown = [{"other": {"reference": f"Patient/{uuid.uuid4()}"}, "type": "seealso"}]
    outcome(await _put(stack.client, registrar, first, link=unknown), 422)
    both = await _put(stack.client, registrar, first, link=link, birthDate="1980-01-01")
    outcome(both, 422)
    assert "link" not in (await stack.client.get(f"Patient/{first}", headers=registrar)).json()

    linked = await _put(stack.client, registrar, first, link=link)
    assert linked.status_code == 200, linked.text
    Patient.model_validate(linked.json())
    assert linked.json()["link"] == link
    other = (await stack.client.get(f"Patient/{second}", headers=registrar)).json()
    assert other["link"] == [{"other": {"reference": f"Patient/{first}"}, "type": "seealso"}]

    unlinked = await _put(stack.client, registrar, first, link=None)
    assert unlinked.status_code == 200, unlinked.text
    assert "link" not in unlinked.json()
    assert "link" not in (await stack.client.get(f"Patient/{second}", headers=registrar)).json()


async def test_a_search_without_criteria_lists_every_patient_for_registrars(
    stack: Stack, registrar_token: str, keycloak: Keycloak
) -> None:
    registrar = _bearer(registrar_token)
    mine = {await registered(stack.client, registrar, f"Eke{secrets.token_hex(5)}")
            for _ in range(3)}  # fmt: skip
    listed: list[str] = []
    page = await stack.client.get("Patient", params={"_count": "2"}, headers=registrar)
    while True:
        assert page.status_code == 200, page.text
        Bundle.model_validate(page.json())
        listed += [e["resource"]["id"] for e in page.json().get("entry", [])]
        following = [link["url"] for link in page.json()["link"] if link["relation"] == "next"]
        if not following:
            break
        page = await stack.client.get(following[0], headers=registrar)
    assert mine <= set(listed)
    assert listed == sorted(set(listed))
    clinician = _bearer(keycloak.user_token("clinician-no-otp", "user/Patient.cruds"))
    outcome(await stack.client.get("Patient", headers=clinician), 403)
