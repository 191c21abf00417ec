"""The gateway's FHIR base over an orders, a results and an audit service of the test's own
(results following the orders' event topic, audit reading both logs), for the version and
search tests of ServiceRequest, DiagnosticReport and Observation; and what they do through it."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log
from clinical_testing.keycloak import Keycloak
from clinical_testing.patients import patient_registry
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from fhir.resources.R4B.servicerequest import ServiceRequest
from pymongo.asynchronous.database import AsyncDatabase

from audit.bootstrap import running_audit
from audit.settings import AuditSettings
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.tokens import TokenVerifier
from gateway.application import GatewayApp
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

from .conftest import internal_verifiers, serve

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]
FHIR = {"content-type": "application/fhir+json"}
LOINC = "http://loinc.org"
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **headers}


@pytest.fixture
async def fhir(  # noqa: PLR0917 - pytest passes fixtures by parameter
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, transit_key: TransitKeyFactory, make_gateway: GatewayFactory,
    patient_id: str,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The FHIR client, once the services run and the module's ``patient_id`` (a fixture) is
    registered."""
    keys = tmp_path / "gateway-keys.pem"
    verifier = internal_verifiers(keys)
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    orders_log, results_log = unique_name("orders-"), unique_name("results-")

    def values(log: str) -> dict[str, Any]:
        return isolated_service_values(
            servers, event_log_name=log, database=mongo_database.name,
            state_dir=tmp_path / log, access_topic=access_topic,
        )  # fmt: skip

    orders_settings = OrdersSettings.model_validate(values(orders_log))
    results_settings = ResultsSettings.model_validate(
        values(results_log) | {"orders_events_topic": events_topic(orders_log)}
    )
    audit_settings = await audit_of(
        servers, mongo_database, kafka_topic, transit_key, tmp_path / "audit",
        access_topic=access_topic, logs=(orders_log, results_log),
    )  # fmt: skip
    async with patient_registry(orders_settings) as registry:
        await registry.register(patient_id)
    try:
        async with AsyncExitStack() as running:
            orders = await running.enter_async_context(
                running_orders(orders_settings, verifier=verifier("clinical-orders"))
            )
            results = await running.enter_async_context(
                running_results(results_settings, verifier=verifier("clinical-results"))
            )
            audit = await running.enter_async_context(
                running_audit(audit_settings, verifier=verifier("clinical-audit"))
            )
            addresses = await serve(running, {"orders": orders.services,
                                              "results": results.services,
                                              "audit": audit.services})  # fmt: skip
            client, _ = await make_gateway(signing_keys_file=keys, **addresses)
            client.base_url = httpx.URL("http://gateway/fhir/r4/")
            yield client
    finally:
        for log in (orders_log, results_log):
            await delete_event_log(servers.kafka_bootstrap_servers, log)


async def audit_of(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], kafka_topic: TopicFactory,
    transit_key: TransitKeyFactory, state_dir: Path, *, access_topic: str, logs: Sequence[str],
) -> AuditSettings:  # fmt: skip
    """The settings of an audit service of the test's own, reading ``access_topic`` and the
    event topics of ``logs``."""
    topics = "|".join(re.escape(events_topic(log)) for log in logs)
    return AuditSettings.model_validate({
        **servers.as_env(), "grpc_port": 0, "mongodb_database": mongo_database.name,
        "VAULT_AUDIT_SIGNING_KEY": transit_key(key_type="ed25519"),
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
        "read_model_name": unique_name("audit-"),
        "event_topic_pattern": f"^({topics})$",
        "checkpoints_topic": await kafka_topic(prefix="test.checkpoints."),
        "state_dir": state_dir,
    })  # fmt: skip


async def serve_orders_and(
    running: AsyncExitStack, orders_settings: OrdersSettings,
    verifier: Callable[[str], TokenVerifier], patient_id: str,
    **others: AbstractAsyncContextManager[Any],
) -> dict[str, str]:  # fmt: skip
    """Registers ``patient_id``, runs an orders service and ``others`` (by name, each a
    ``running_<name>(...)``) on ``running`` and serves them; the gateway's address settings."""
    async with patient_registry(orders_settings) as registry:
        await registry.register(patient_id)
    orders = await running.enter_async_context(
        running_orders(orders_settings, verifier=verifier("clinical-orders"))
    )
    services = {"orders": orders.services}
    for name, service in others.items():
        services[name] = (await running.enter_async_context(service)).services
    return await serve(running, services)


@contextmanager
def realm_user(keycloak: Keycloak, *roles: str) -> Iterator[str]:
    """A throw-away realm user holding ``roles`` (e.g. an auditor who is laboratory staff too,
    which no scripted user is); yields its username (password ``<username>-local``)."""
    username = f"h-{'-'.join(roles)}-{uuid.uuid4().hex[:8]}"
    with keycloak.admin() as admin:
        created = admin.post("/users", json={
            "username": username, "enabled": True, "email": f"{username}@example.org",
            "emailVerified": True, "firstName": "Test", "lastName": "User",
            "credentials": [{"type": "password", "value": f"{username}-local",
                             "temporary": False}],
        })  # fmt: skip
        created.raise_for_status()
        user = created.headers["location"].rsplit("/", 1)[1]
        try:
            granted = [admin.get(f"/roles/{role}").json() for role in roles]
            admin.post(f"/users/{user}/role-mappings/realm", json=granted).raise_for_status()
            yield username
        finally:
            admin.delete(f"/users/{user}")


async def placed_order(fhir: httpx.AsyncClient, token: str, patient_id: str,
                       code: str = "2345-7") -> dict[str, Any]:  # fmt: skip
    order = {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "priority": "routine", "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]}],
    }  # fmt: skip
    created = await fhir.post("ServiceRequest", headers=auth(token, **FHIR), json=order)
    assert created.status_code == 201, created.text
    resource: dict[str, Any] = created.json()
    ServiceRequest.model_validate(resource)
    return resource


async def signed_order(fhir: httpx.AsyncClient, token: str, order_id: str) -> dict[str, Any]:
    signed = await fhir.post(f"ServiceRequest/{order_id}/$sign", headers=auth(token))
    assert signed.status_code == 200, signed.text
    return dict(signed.json())


async def revoked_order(fhir: httpx.AsyncClient, token: str, order: dict[str, Any]) -> None:
    reason = {"url": STATUS_REASON, "valueCodeableConcept": {"text": "ordered twice"}}
    revoked = {**order, "status": "revoked", "extension": [reason]}
    answer = await fhir.put(f"ServiceRequest/{order['id']}", headers=auth(token, **FHIR),
                            json=revoked)  # fmt: skip
    assert answer.status_code == 200, answer.text


async def posted_result(fhir: httpx.AsyncClient, lab: str, signed: dict[str, Any],
                        observations: list[dict[str, Any]], **fields: Any) -> str:  # fmt: skip
    posted = await fhir.post("http://gateway/api/v1/results", headers=auth(lab), json={
        "request_id": str(uuid.uuid4()), "order_id": signed["id"],
        "order_min_version": signed["meta"]["versionId"], "observations": observations,
        **fields,
    })  # fmt: skip
    assert posted.status_code == 200, posted.text
    return str(posted.json()["result_id"])


async def amended_result(fhir: httpx.AsyncClient, lab: str, result_id: str,
                         observations: list[dict[str, Any]]) -> int:  # fmt: skip
    amended = await fhir.post(f"http://gateway/api/v1/results/{result_id}/amend",
                              headers=auth(lab), json={
        "request_id": str(uuid.uuid4()), "kind": "REVISION_KIND_AMENDMENT",
        "observations": observations, "reason": "re-run on a new sample",
    })  # fmt: skip
    assert amended.status_code == 200, amended.text
    return int(amended.json()["version"])


def quantity(code: str, value: str, unit: str) -> dict[str, Any]:
    return {"code": code, "quantity": {"value": value, "unit": unit}}


async def answered(read: Callable[[], Awaitable[httpx.Response]], *, until: Callable[
        [httpx.Response], bool] = lambda a: a.status_code != 404) -> httpx.Response:  # fmt: skip
    """The first answer ``until`` accepts, within 30 s (read models and the audit service
    follow the logs asynchronously)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        answer = await read()
        if until(answer) or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.2)
