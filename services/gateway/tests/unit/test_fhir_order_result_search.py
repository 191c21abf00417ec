"""ServiceRequest, DiagnosticReport and Observation searches as the List requests the services
answer (code, authored, date, status), their totals, and each malformed value a 400 naming its
parameter before any call; any date bound holds exactly the instants it names."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given
from hypothesis import strategies as st

from gateway.entrypoints.fhir.order_result_search import dated_query
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.service_request_resource import LOINC

from .conftest import FakeServices, fhir_client, outcome
from .test_fhir_orders_results_api import (
    NEXT_PAGE,
    PATIENT_ID,
    TOKENS,
    bearer,
    ok,
    order,
    result,
)

pytestmark = pytest.mark.unit

WINDOW = ("since", "until")


@pytest.fixture
def services() -> FakeServices:
    return FakeServices({
        "ListOrders": ok(orders=[order()], next_page_token=NEXT_PAGE, total="57"),
        "ListResults": ok(results=[result()], next_page_token=NEXT_PAGE, total="31"),
    })  # fmt: skip


@pytest.fixture
async def client(services: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(services, TOKENS, limit="100/minute") as http:
        yield http


@pytest.mark.parametrize(("code", "sent"), [
    ("2345-7", ["2345-7"]), (f"{LOINC}|2345-7", ["2345-7"]),
    # No record is coded without a system, or in another: a code none has.
    ("|2345-7", ["|"]), ("http://snomed.info/sct|2345-7", ["|"]),
])  # fmt: skip
async def test_a_code_token_is_the_loinc_code_the_service_filters_by(
    client: httpx.AsyncClient, services: FakeServices, code: str, sent: list[str]
) -> None:
    await client.get("/ServiceRequest", params={"patient": PATIENT_ID, "code": code},
                     headers=bearer())  # fmt: skip
    assert services.calls[-1].request["test_codes"] == sent
    await client.get("/DiagnosticReport", params={"patient": PATIENT_ID, "code": code},
                     headers=bearer())  # fmt: skip
    assert services.calls[-1].request["report_codes"] == sent
    await client.get("/Observation", params={"patient": PATIENT_ID, "code": code},
                     headers=bearer("observations"))  # fmt: skip
    assert services.calls[-1].request["codes"] == sent


async def test_authored_bounds_are_the_placing_window_and_the_total_is_the_services(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("patient", PATIENT_ID), ("authored", "ge2026-12-01"),
        ("authored", "lt2026-12-07T10:00:00+01:00"), ("_summary", "count"),
    ]  # fmt: skip
    answer = await client.get("/ServiceRequest", params=params, headers=bearer())
    assert answer.status_code == 200, answer.text
    assert Bundle.model_validate(answer.json()).total == 57
    sent = services.calls[-1].request
    assert (sent["authored_from"], sent["authored_to"]) == (
        "2026-12-01T00:00:00Z", "2026-12-07T09:00:00Z"
    )  # fmt: skip


async def test_date_and_status_go_to_the_results_service(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    params = {"patient": PATIENT_ID, "date": "2026-12-07", "status": "amended"}
    answer = await client.get("/DiagnosticReport", params=params, headers=bearer())
    assert Bundle.model_validate(answer.json()).total == 31
    sent = services.calls[-1].request
    assert sent["statuses"] == ["RESULT_STATUS_AMENDED"]
    assert (sent["effective_from"], sent["effective_to"]) == (
        "2026-12-07T00:00:00Z", "2026-12-08T00:00:00Z"
    )  # fmt: skip
    # An Observation page counts results, not observations: no total while more pages come.
    observations = await client.get("/Observation", params=params,
                                    headers=bearer("observations"))  # fmt: skip
    assert "total" not in observations.json()


@pytest.mark.parametrize(("kind", "params", "parameter"), [
    ("ServiceRequest", [("authored", "ne2026-12-01")], "authored"),
    ("ServiceRequest", [("authored", "eq2026-12-01T10:00:00Z")], "authored"),
    ("ServiceRequest", [("authored", "ge2026-12-01T10:00")], "authored"),
    ("ServiceRequest", [("authored", "ge2026-12-02"), ("authored", "lt2026-12-02")], "authored"),
    ("ServiceRequest", [("authored", "ge2026-12-01"), ("authored", "gt2026-12-03")], "authored"),
    ("ServiceRequest", [("code", "a|b|c")], "code"),
    ("ServiceRequest", [("status", "on-hold")], "status"),
    ("DiagnosticReport", [("status", "preliminary")], "status"),
    ("DiagnosticReport", [("date", "ap2026-12-01")], "date"),
    ("Observation", [("date", "ge2026-12-01")] * 3, "date"),
])  # fmt: skip
async def test_a_value_the_service_cannot_use_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, services: FakeServices, kind: str,
    params: list[tuple[str, str]], parameter: str,
) -> None:  # fmt: skip
    token = "observations" if kind == "Observation" else "clinician"
    answer = await client.get(f"/{kind}", params=[("patient", PATIENT_ID), *params],
                              headers=bearer(token))  # fmt: skip
    assert outcome(answer, 400).issue[0].expression == [parameter]
    assert services.calls == []


DAYS = st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2099, 1, 1).date())


@given(DAYS, st.sampled_from(["eq", "ge", "gt", "le", "lt", ""]),
       st.integers(min_value=-2 * 86400, max_value=3 * 86400))  # fmt: skip
def test_a_day_bound_holds_exactly_the_instants_it_names(
    day: Any, prefix: str, offset_s: int
) -> None:
    query = dated_query([("authored", f"{prefix}{day.isoformat()}")], {}, dated="authored",
                        window=WINDOW, strict=False)  # fmt: skip
    start = datetime.combine(day, datetime.min.time(), UTC)
    instant = start + timedelta(seconds=offset_s)
    since, until = (query.values.get(end) for end in WINDOW)
    inside = (since is None or instant >= _at(since)) and (until is None or instant < _at(until))
    expected = {
        "": start <= instant < start + timedelta(days=1),
        "eq": start <= instant < start + timedelta(days=1),
        "ge": instant >= start, "gt": instant >= start + timedelta(days=1),
        "le": instant < start + timedelta(days=1), "lt": instant < start,
    }[prefix]  # fmt: skip
    assert inside == expected


@given(st.lists(st.tuples(st.sampled_from(["date", "code", "status", "_count"]),
                          st.text(max_size=30)), max_size=4))  # fmt: skip
def test_any_date_values_are_a_window_or_a_400_naming_the_date(
    params: list[tuple[str, str]],
) -> None:
    try:
        query = dated_query(params, {}, dated="date", window=WINDOW, strict=False)
    except FhirError as refused:
        assert refused.status == 400  # noqa: PT017 - a property: refused or not, both are fine
        return
    assert set(query.values) <= {"page_size", *WINDOW}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(("kind", "parameter"), [
    ("ServiceRequest", "authored"), ("ServiceRequest", "code"), ("ServiceRequest", "status"),
    ("DiagnosticReport", "date"), ("DiagnosticReport", "status"),
])  # fmt: skip
async def test_a_refused_value_is_never_shown_back_nor_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, kind: str, parameter: str
) -> None:
    canary = f"x{secrets.token_hex(16)}|a|b"
    with caplog.at_level(logging.DEBUG):
        answer = await client.get(f"/{kind}", params={"patient": PATIENT_ID, parameter: canary},
                                  headers=bearer())  # fmt: skip
    assert outcome(answer, 400).issue[0].expression == [parameter]
    assert canary[:33] not in answer.text
    ours = [record for record in caplog.records if record.name != "httpx"]  # the test's client
    assert all(canary[:33] not in str(record.__dict__) for record in ours)
