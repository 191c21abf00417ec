"""A record's version history in the audit console: its versions from History, the fields each
event recorded (named, values withheld), the provenance that differs from the version before,
and the hash chain's links."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from gateway.entrypoints.console.versions import payload_fields, record_history
from gateway.ports import DownstreamAnswer

from .test_console import CANARY, FakeAudit, audit_service, browser, log_in, refusals

pytestmark = pytest.mark.unit
__all__ = ["audit_service", "browser", "refusals"]  # fixtures of the console's own tests

ORDER = "6f1d8b64-8e4f-4c3a-9b1e-3c4d5e6f7a80"
PATIENT = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"
HASH_1, HASH_2 = "aGFzaC0x", "aGFzaC0y"


def change(version: int, event_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": event_type, "schema_version": 1, "aggregate_type": "Order",
        "aggregate_id": ORDER, "aggregate_version": str(version), "patient_id": PATIENT,
        "recorded_at": f"2026-12-07T10:00:0{version}Z",
        "payload_type": f"clinical.events.v1.{event_type}", "payload_encrypted": True,
        "actor": {"subject": "doc-1", "roles": ["clinician"], "client_id": "companion-app"},
        "purpose_of_use": "PURPOSE_OF_USE_TREAT", "source_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (ward)", "hash": HASH_1, **fields,
    }  # fmt: skip


PLACED = change(1, "OrderPlaced")
SIGNED = change(2, "OrderSigned", prev_hash=HASH_1, hash=HASH_2, source_ip="203.0.113.9",
                user_agent=CANARY)  # fmt: skip


def test_each_version_names_the_fields_its_event_recorded_and_the_provenance_that_differs() -> None:
    history = record_history(ORDER, [SIGNED, PLACED], complete=True)

    assert [v.version for v in history.versions] == [1, 2]
    assert (history.record_type, history.patient_id) == ("Order", PATIENT)
    signed = history.versions[1]
    withheld = [c.path for c in signed.changes if c.withheld]
    assert withheld == ["signature.signer", "signature.signed_at", "signature.mfa"]
    shown = {c.path: (c.before, c.after) for c in signed.changes if not c.withheld}
    assert shown == {
        "event_type": ("OrderPlaced", "OrderSigned"),
        "payload_type": ("clinical.events.v1.OrderPlaced", "clinical.events.v1.OrderSigned"),
        "source_ip": ("203.0.113.7", "203.0.113.9"),
        "user_agent": ("Mozilla/5.0 (ward)", CANARY),
    }
    assert all(c.before == c.after == "" for c in signed.changes if c.withheld)
    assert (history.versions[0].chain, signed.chain) == ("first", "follows version 1")
    placed_fields = [c.path for c in history.versions[0].changes if c.withheld]
    assert placed_fields[:3] == ["patient_id", "test.code", "test.display"]


def test_a_broken_link_or_a_missing_version_is_said() -> None:
    forged = change(2, "OrderSigned", prev_hash="b3RoZXI=")
    late = change(4, "OrderCancelled", prev_hash=HASH_1)

    chains = [
        v.chain for v in record_history(ORDER, [PLACED, forged, late], complete=True).versions
    ]

    assert chains == ["first", "BROKEN: does not follow version 1", "versions 3 to 3 missing"]


def test_a_patients_fields_are_named_down_to_the_part_of_the_record() -> None:
    paths = payload_fields("clinical.events.v1.DemographicsUpdated")

    assert {"demographics.name.family", "demographics.birth_date", "demographics.identifiers",
            "demographics.address.postal_code"} <= set(paths)  # fmt: skip
    assert payload_fields("clinical.events.v1.NoSuchEvent") == ()


async def test_the_version_history_page_shows_changed_fields_never_payload_values(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    audit_service.answers["History"] = DownstreamAnswer("OK", body={"changes": [PLACED, SIGNED]})
    await log_in(browser, "auditor")

    answer = await browser.get(f"/console/records/{ORDER.upper()}")

    assert answer.status_code == 200, answer.text
    assert [(c.method, dict(c.request)) for c in audit_service.calls] == [
        ("History", {"aggregate_id": ORDER, "page_size": 1000, "page_token": ""})
    ]
    for text in ("signature.signer", "203.0.113.9", "follows version 1", "OrderSigned",
                 "the value is patient data, not shown", f'value="{PATIENT}"'):  # fmt: skip
        assert text in answer.text
    assert CANARY not in answer.text  # escaped, never markup
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert "<script" not in answer.text


async def test_a_record_id_that_is_no_uuid_is_refused_before_any_call(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    name = f"Okafor-{secrets.token_hex(8)}"

    answer = await browser.get(f"/console/records/{name}")

    assert answer.status_code == 404
    assert name not in answer.text
    assert audit_service.calls == []


async def test_without_a_session_the_history_is_the_login_page(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    answer = await browser.get(f"/console/records/{ORDER}")

    assert answer.status_code == 401
    assert audit_service.calls == []


async def test_the_timeline_links_each_changed_record_to_its_history(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    audit_service.answers["History"] = DownstreamAnswer("OK", body={"changes": [SIGNED]})
    await log_in(browser, "auditor")

    answer = await browser.post("/console/timeline", data={"patient_id": PATIENT})

    assert f'<a href="/console/records/{ORDER}">Order {ORDER} v2</a>' in answer.text
