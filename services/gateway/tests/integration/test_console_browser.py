"""The audit console in a real browser (Debian's Chromium through Playwright): the auditor logs
in on Keycloak's page, finds a patient's registration, order, signature, result and a lab
user's read on the timeline, each with its actor, the end user's source IP (named by a trusted
proxy's X-Forwarded-For) and user agent, opens the order's version history and sees the fields
its signature changed, and verifies the orders topic (its latest signed checkpoint and age),
then sees a forged record fail the verification at its offset; a clinician is refused.

Patient, orders, results and audit run in this process against the real servers, trusting only
this gateway's key. The gateway is served on 127.0.0.1:18057 because the realm's `companion-app`
client allows redirects there (Keycloak keeps the realm it imported on its first start).
Screenshots go to .infra/test-artifacts/console/.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from playwright.async_api import Browser, Page, async_playwright
from pymongo.asynchronous.database import AsyncDatabase

from audit.bootstrap import running_audit
from audit.settings import AuditSettings
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_producer
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.bootstrap import gateway_http_app, serving_http
from gateway.settings import GatewaySettings
from localinfra import axe, chromium
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# A redirect URI the realm's companion-app client allows (http://127.0.0.1:18057/*).
CONSOLE_PORT = 18057
BASE = f"http://127.0.0.1:{CONSOLE_PORT}"
ARTIFACTS = Path(__file__).resolve().parents[4] / ".infra" / "test-artifacts" / "console"
# The flow's end user, as the gateway's trusted proxy (this test's client) names it.
CLIENT_IP = "203.0.113.77"
CLIENT_AGENT = f"Mozilla/5.0 (ward tablet; console-test {secrets.token_hex(8)})"
STEPS = ("PatientRegistered", "OrderPlaced", "OrderSigned", "ResultPosted", "READ GetOrder")


@dataclass
class Stack:
    orders_topic: str
    kafka: KafkaConnection


@pytest.fixture
async def stack(  # noqa: PLR0917 - pytest passes fixtures by parameter
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any],
    second_database: AsyncDatabase[Any], tmp_path: Path, kafka_topic: TopicFactory,
    transit_key: TransitKeyFactory, keycloak: Keycloak,
) -> AsyncIterator[Stack]:  # fmt: skip
    keys = tmp_path / "gateway-keys.pem"
    rotate_key_file(keys)
    public_pem = InternalTokenIssuer.from_pem_file(keys, issuer="", ttl_s=60).public_pem()

    def verifier(audience: str) -> TokenVerifier:
        return TokenVerifier.from_pem(public_pem, issuer="clinical-platform", audience=audience)

    patient_service, orders_service = unique_name("patient-"), unique_name("orders-")
    results_service = unique_name("results-")
    topics = [events_topic(patient_service), events_topic(orders_service),
              events_topic(results_service)]  # fmt: skip
    access = {"ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
              "ACCESS_AUDIT_PARTITIONS": 1}  # fmt: skip
    patient_settings = PatientSettings.model_validate({
        **servers.as_env(), **access, "grpc_port": 0, "event_partitions": 1,
        "mongodb_database": mongo_database.name, "state_dir": tmp_path / "patient",
    })  # fmt: skip
    signing_key = transit_key(key_type="ed25519")
    orders_settings = OrdersSettings.model_validate({
        **servers.as_env(), **access, "grpc_port": 0, "event_partitions": 1,
        # Checkpoints of the orders topic, signed with this test's key, a second after writes.
        "VAULT_AUDIT_SIGNING_KEY": signing_key, "AUDIT_CHECKPOINT_EVERY_SECONDS": 1.0,
        "event_log_name": orders_service, "patient_events_topic": topics[0],
        "mongodb_database": second_database.name, "state_dir": tmp_path / "orders",
    })  # fmt: skip
    results_settings = ResultsSettings.model_validate({
        **servers.as_env(), **access, "grpc_port": 0, "event_partitions": 1,
        "event_log_name": results_service, "orders_events_topic": topics[1],
        "patient_events_topic": topics[0], "mongodb_database": second_database.name,
        "state_dir": tmp_path / "results",
    })  # fmt: skip
    audit_settings = AuditSettings.model_validate({
        **servers.as_env(), **access, "grpc_port": 0, "mongodb_database": mongo_database.name,
        "VAULT_AUDIT_SIGNING_KEY": signing_key,
        "read_model_name": unique_name("audit-"),
        "event_topic_pattern": "^(" + "|".join(re.escape(t) for t in topics) + ")$",
        # Writers publish to the one checkpoint topic, keyed by this test's topic/partition.
        "checkpoints_topic": CHECKPOINTS_TOPIC,
        "state_dir": tmp_path / "audit",
    })  # fmt: skip
    try:
        async with AsyncExitStack() as running:
            patient = await running.enter_async_context(running_patient(
                patient_settings, service=patient_service, verifier=verifier("clinical-patient")
            ))  # fmt: skip
            orders = await running.enter_async_context(
                running_orders(orders_settings, verifier=verifier("clinical-orders"))
            )
            results = await running.enter_async_context(
                running_results(results_settings, verifier=verifier("clinical-results"))
            )
            audit = await running.enter_async_context(
                running_audit(audit_settings, verifier=verifier("clinical-audit"))
            )
            ports = {}
            for name, services in (("patient", patient.services), ("orders", orders.services),
                                   ("results", results.services),
                                   ("audit", audit.services)):  # fmt: skip
                server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
                running.push_async_callback(server.stop, 0)
                ports[name] = f"127.0.0.1:{server.port}"
            settings = GatewaySettings(
                oidc_issuer=keycloak.issuer, signing_keys_file=keys, access_trail=False,
                patient_address=ports["patient"], orders_address=ports["orders"],
                results_address=ports["results"], audit_address=ports["audit"],
                console_public_url=BASE, console_topics=(topics[1],),
                # This test's client plays the proxy: its X-Forwarded-For names the end user.
                trusted_proxies=("127.0.0.1",),
            )  # fmt: skip
            asgi, _ = await running.enter_async_context(gateway_http_app(settings))
            await running.enter_async_context(serving_http(asgi, "127.0.0.1", CONSOLE_PORT))
            yield Stack(topics[1], KafkaConnection.from_settings(orders_settings))
    finally:
        admin = build_admin(KafkaConnection.from_settings(patient_settings))
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()


def subject_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-forwarded-for": CLIENT_IP,
            "user-agent": CLIENT_AGENT}  # fmt: skip


async def otp_login(keycloak: Keycloak, username: str, scope: str) -> str:
    """A login with the user's one-time code. Keycloak takes each code once, and another
    process (a parallel test run) may have used this window's: then the next code does."""
    for _ in range(2):
        try:
            return await asyncio.to_thread(keycloak.user_token, username, scope, otp=True)
        except AssertionError as refused:
            if "invalid_grant" not in str(refused):
                raise
    return await asyncio.to_thread(keycloak.user_token, username, scope, otp=True)


@dataclass(frozen=True)
class Flow:
    patient_id: str
    order_id: str
    actors: dict[str, str]  # step (event type, or action and operation) -> its actor's subject


async def register_order_sign_result_and_read(keycloak: Keycloak) -> Flow:
    """The clinical flow through the gateway's API (FHIR and /api/v1), from CLIENT_IP."""
    registrar = keycloak.user_token("registrar", "user/Patient.cruds")
    clinician = await otp_login(keycloak, "clinician", "user/*.cruds")
    lab = keycloak.user_token("lab", "user/*.rs user/Observation.cruds")
    async with httpx.AsyncClient(base_url=BASE, timeout=30) as api:
        created = await api.post("/fhir/r4/Patient", headers={
            **auth(registrar), "content-type": "application/fhir+json"}, json={
            "resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Chiamaka"]}],
            "identifier": [{"system": "urn:mrn:console-test", "value": secrets.token_hex(8)}],
            "gender": "female", "birthDate": "1979-11-23"})  # fmt: skip
        assert created.status_code == 201, created.text
        patient_id = str(created.json()["id"])
        placed = await api.post("/api/v1/orders", headers=auth(clinician), json={
            "request_id": str(uuid.uuid4()), "patient_id": patient_id, "test_code": "2823-3",
            "priority": "PRIORITY_ROUTINE",
            "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "N18.3"}]})  # fmt: skip
        assert placed.status_code == 200, placed.text
        order_id = str(placed.json()["order_id"])
        signed = await api.post(f"/api/v1/orders/{order_id}/sign", headers=auth(clinician),
                                json={"request_id": str(uuid.uuid4())})  # fmt: skip
        assert signed.status_code == 200, signed.text
        posted = await api.post("/api/v1/results", headers=auth(lab), json={
            "request_id": str(uuid.uuid4()), "order_id": order_id,
            "order_min_version": signed.json()["version"],
            "observations": [{"code": "2823-3", "quantity": {"value": "4.1", "unit": "mmol/L"}}],
        })  # fmt: skip
        assert posted.status_code == 200, posted.text
        read = await api.get(f"/api/v1/orders/{order_id}", headers=auth(lab))
        assert read.status_code == 200, read.text
    by_clinician = subject_of(clinician)
    return Flow(patient_id, order_id, {
        "PatientRegistered": subject_of(registrar), "OrderPlaced": by_clinician,
        "OrderSigned": by_clinician, "ResultPosted": subject_of(lab),
        "READ GetOrder": subject_of(lab)})  # fmt: skip


async def forge_a_record(stack: Stack) -> int:
    """Tampering: a record on the orders topic that its writer never wrote; its offset."""
    producer = build_producer(stack.kafka)
    await producer.start()
    try:
        sent = await producer.send_and_wait(stack.orders_topic, b"forged", partition=0)
    finally:
        await producer.stop()
    return int(sent.offset)


async def serious_violations(page: Page, axe_script: str) -> list[str]:
    """axe-core's serious and critical violations on the page (WCAG 2.x A and AA rules)."""
    # Evaluated through the DevTools protocol: the page's CSP (no script) does not apply.
    await page.evaluate(axe_script)
    results = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    return [f"{v['id']}: {v['help']}" for v in results["violations"]
            if v["impact"] in ("serious", "critical")]  # fmt: skip


async def log_in(page: Page, username: str) -> None:
    await page.goto(f"{BASE}/console/")
    await page.click("#login")
    await page.fill("#username", username)
    await page.fill("#password", f"{username}-local")
    await page.click("#kc-login")


@dataclass(frozen=True)
class Row:
    actor: str
    source_ip: str
    user_agent: str


async def timeline_rows(page: Page, patient_id: str) -> dict[str, Row]:
    """What → actor, source IP and user agent, of each row of the timeline (the first row of
    each kind: newest)."""
    await page.goto(f"{BASE}/console/")
    # By keyboard: the skip link comes first, the field takes the id, Enter submits.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.focus("#patient_id")
    await page.keyboard.type(patient_id)
    await page.keyboard.press("Enter")
    await page.locator("#timeline").wait_for()
    rows: dict[str, Row] = {}
    for row in await page.locator("#timeline tbody tr").all():
        cells = [cell.strip() for cell in await row.locator("td").all_inner_texts()]
        if len(cells) == 12:
            rows.setdefault(cells[2].splitlines()[0].strip(), Row(cells[5], cells[9], cells[10]))
    return rows


async def the_orders_history_shows_what_its_signature_changed(
    page: Page, flow: Flow, axe_script: str
) -> None:
    """From the timeline, by keyboard, to the order's version history: version 2 (OrderSigned)
    names the signature's fields (values withheld) and who signed from where."""
    link = page.locator(f"#timeline a[href='/console/records/{flow.order_id}']").first
    await link.focus()
    await page.keyboard.press("Enter")
    await page.locator("#versions").wait_for()
    assert page.url == f"{BASE}/console/records/{flow.order_id}"  # a record id, nothing else
    assert flow.patient_id not in page.url
    versions = [[cell.strip() for cell in await row.locator("td").all_inner_texts()]
                for row in await page.locator("#versions tbody tr").all()]  # fmt: skip
    assert [(v[0], v[2], v[3], v[7]) for v in versions[:2]] == [
        ("1", "OrderPlaced", flow.actors["OrderPlaced"], CLIENT_IP),
        ("2", "OrderSigned", flow.actors["OrderSigned"], CLIENT_IP),
    ]
    assert versions[1][10] == "follows version 1"
    changed = await page.locator("#changes-table-2 th.field").all_inner_texts()
    assert {"signature.signer", "signature.signed_at", "signature.mfa", "event_type"} <= {
        c.strip() for c in changed
    }
    await page.screenshot(path=ARTIFACTS / "record-history.png", full_page=True)
    assert await serious_violations(page, axe_script) == []


async def verify_now_until_attested_then_tampered(
    page: Page, stack: Stack, axe_script: str
) -> None:
    """Verify now: OK with the age of the latest signed checkpoint; after a forged record,
    FAILED at the forged record's offset."""
    await page.click("text=Integrity")
    verify = f"button[aria-label='Verify now: {stack.orders_topic}']"
    for _ in range(30):  # until the orders' writer signed its first checkpoint
        await page.click(verify)
        await page.locator("#verdict").wait_for()
        assert await page.inner_text("#verdict") == "OK"
        if await page.locator("#partitions .age").count():
            break
        await asyncio.sleep(1)
    assert re.fullmatch(r"\d+ s|\d+ min \d+ s", await page.inner_text("#partitions .age"))
    await page.screenshot(path=ARTIFACTS / "integrity.png", full_page=True)
    assert await serious_violations(page, axe_script) == []

    forged_at = await forge_a_record(stack)
    await page.click(verify)
    await page.locator("#verdict").wait_for()
    assert await page.inner_text("#verdict") == "FAILED"
    cells = await page.locator("#partitions tbody tr").first.locator("td").all_inner_texts()
    assert (cells[1], cells[6]) == ("FAILED", str(forged_at))
    await page.screenshot(path=ARTIFACTS / "integrity-tampered.png", full_page=True)
    assert await serious_violations(page, axe_script) == []


async def a_clinician_is_refused(browser: Browser, axe_script: str) -> None:
    refused = await (await browser.new_context()).new_page()
    await log_in(refused, "clinician-no-otp")
    await refused.locator("#refused").wait_for(timeout=30_000)
    assert "for auditors only" in await refused.inner_text("main")
    await refused.screenshot(path=ARTIFACTS / "clinician-refused.png", full_page=True)
    assert await serious_violations(refused, axe_script) == []
    await refused.goto(f"{BASE}/console/")
    assert await refused.locator("#login").count() == 1  # no session was opened
    assert await serious_violations(refused, axe_script) == []


async def test_an_auditor_traces_a_record_verifies_the_log_sees_tampering_a_clinician_is_refused(
    stack: Stack, keycloak: Keycloak
) -> None:
    flow = await register_order_sign_result_and_read(keycloak)
    patient_id, actors = flow.patient_id, flow.actors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    executable = chromium.install()  # Debian's package, never a downloaded browser
    axe_script = axe.install().read_text()  # the npm package, installed into the cache
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(executable_path=str(executable),
                                                   args=["--no-sandbox"])  # fmt: skip
        try:
            page = await browser.new_page()
            await log_in(page, "auditor")
            await page.wait_for_url(f"{BASE}/console/", timeout=30_000)
            await page.locator("#patient_id").wait_for()
            assert await serious_violations(page, axe_script) == []
            rows: dict[str, Row] = {}
            for _ in range(60):  # the audit service follows the log: wait for every step
                rows = await timeline_rows(page, patient_id)
                if all(step in rows for step in STEPS):
                    break
                await asyncio.sleep(1)
            assert {step: rows.get(step) for step in STEPS} == {
                step: Row(actors[step], CLIENT_IP, CLIENT_AGENT) for step in STEPS
            }
            assert patient_id not in page.url
            await page.screenshot(path=ARTIFACTS / "timeline.png", full_page=True)
            assert await serious_violations(page, axe_script) == []
            lab = actors["READ GetOrder"]
            await page.fill("#actor", lab)
            await page.click("#apply-filters")
            actor_cells = await page.locator("#timeline td.actor").all_inner_texts()
            assert {cell.strip() for cell in actor_cells} == {lab}  # and at least one

            await page.fill("#actor", "")
            await page.click("#apply-filters")
            await the_orders_history_shows_what_its_signature_changed(page, flow, axe_script)

            await verify_now_until_attested_then_tampered(page, stack, axe_script)
            await a_clinician_is_refused(browser, axe_script)
        finally:
            await browser.close()
