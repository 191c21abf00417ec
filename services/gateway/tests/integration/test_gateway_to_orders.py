"""Through the gateway to the real orders service: Keycloak tokens, exchanged, and MFA to sign.

Orders runs in this process against the real servers and trusts only the gateway's key, for
its own audience (``clinical-orders``): every call here went through the token exchange. One
test serves orders over mutual TLS, the gateway calling it with a certificate of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak
from clinical_testing.patients import patient_registry
from clinical_testing.plugin import TopicFactory, unique_name
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2, orders_pb2_grpc
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.grpc_tls import TlsFiles
from clinical_platform.principals import Principal, Role
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.application import GatewayApp
from localinfra import certificates
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]
PATIENT_ID = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # the realm's patient user's record;
# registered by each fixture (only a registered patient's orders are taken).


@asynccontextmanager
async def orders_behind_gateway(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory, *, mtls: bool,
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:  # fmt: skip
    """The gateway's HTTP client, and the port of the orders service behind it: over mutual
    TLS (certificates from the local CA, as `localinfra certificate` issues them) or plaintext."""
    keys = tmp_path / "gateway-keys.pem"
    rotate_key_file(keys)
    public_pem = InternalTokenIssuer.from_pem_file(keys, issuer="", ttl_s=60).public_pem()
    verifier = TokenVerifier.from_pem(public_pem, issuer="clinical-platform",
                                      audience="clinical-orders")  # fmt: skip
    settings = OrdersSettings.model_validate({
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 1,
        "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
        "ACCESS_AUDIT_PARTITIONS": 1, "event_log_name": unique_name("orders-"),
        "mongodb_database": mongo_database.name, "state_dir": tmp_path / "orders",
    })  # fmt: skip
    gateway_tls: dict[str, Path] = {}
    credentials = None
    if mtls:
        certificates.make_ca(tmp_path)
        orders_cert = certificates.service_certificate(tmp_path, "orders")
        tls = TlsFiles(orders_cert.cert_file, orders_cert.key_file, orders_cert.ca_file)
        credentials = tls.server_credentials()
        gateway_cert = certificates.service_certificate(tmp_path, "gateway")
        gateway_tls = {"grpc_tls_cert_file": gateway_cert.cert_file,
                       "grpc_tls_key_file": gateway_cert.key_file,
                       "grpc_tls_ca_file": gateway_cert.ca_file}  # fmt: skip
    async with patient_registry(settings) as registry:
        await registry.register(PATIENT_ID)
    async with AsyncExitStack() as stack:
        orders = await stack.enter_async_context(running_orders(settings, verifier=verifier))
        server = await start_grpc_server(host="127.0.0.1", port=0, services=orders.services,
                                         credentials=credentials)  # fmt: skip
        stack.push_async_callback(server.stop, 0)
        client, _ = await make_gateway(
            signing_keys_file=keys, orders_address=f"127.0.0.1:{server.port}",
            orders_audience="clinical-orders", **gateway_tls,
        )  # fmt: skip
        yield client, server.port


@pytest.fixture
async def gateway_to_orders(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    async with orders_behind_gateway(
        servers, mongo_database, tmp_path, kafka_topic, make_gateway, mtls=False
    ) as (client, _):
        yield client


def subject_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def place(client: httpx.AsyncClient, token: str) -> tuple[str, str]:
    placed = await client.post("/api/v1/orders", headers=auth(token), json={
        "request_id": str(uuid.uuid4()), "patient_id": PATIENT_ID, "test_code": "2823-3",
        "priority": "PRIORITY_ROUTINE",
        "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "N18.3"}],
    })  # fmt: skip
    assert placed.status_code == 200, placed.text
    return str(placed.json()["order_id"]), str(placed.json()["version"])


async def test_sign_order_needs_otp_in_the_session(
    gateway_to_orders: httpx.AsyncClient, keycloak: Keycloak, clinician_otp_token: str
) -> None:
    client = gateway_to_orders
    without_otp = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")
    order_id, _ = await place(client, without_otp)
    sign = {"request_id": str(uuid.uuid4())}

    refused = await client.post(f"/api/v1/orders/{order_id}/sign", headers=auth(without_otp),
                                json=sign)  # fmt: skip
    signed = await client.post(f"/api/v1/orders/{order_id}/sign",
                               headers=auth(clinician_otp_token), json=sign)  # fmt: skip

    assert refused.status_code == 403
    assert "multi-factor" in refused.json()["message"]
    assert signed.status_code == 200, signed.text
    # Read back by the orderer: placing the order put the patient in their care.
    order = await client.get(f"/api/v1/orders/{order_id}", headers=auth(without_otp),
                             params={"min_version": signed.json()["version"]})  # fmt: skip
    signature = order.json()["order"]["signature"]
    assert signature["signer"] == subject_of(clinician_otp_token)
    assert signature["mfa"] is True


async def test_each_role_reaches_orders_as_itself(
    gateway_to_orders: httpx.AsyncClient, keycloak: Keycloak
) -> None:
    client = gateway_to_orders
    clinician = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")
    order_id, version = await place(client, clinician)
    placed = await client.get(f"/api/v1/orders/{order_id}", headers=auth(clinician),
                              params={"min_version": version})  # fmt: skip
    assert placed.json()["order"]["orderer"] == subject_of(clinician)
    readers = {
        "lab": keycloak.user_token("lab", "user/ServiceRequest.rs"),
        "patient": keycloak.user_token("patient", "patient/ServiceRequest.rs launch/patient"),
        "partner": keycloak.client_token("system/*.rs"),
    }
    for name, token in readers.items():
        answer = await client.get(f"/api/v1/orders/{order_id}", headers=auth(token),
                                  params={"min_version": version})  # fmt: skip
        assert answer.status_code == 200, (name, answer.text)
    lab_places = await client.post("/api/v1/orders", headers=auth(readers["lab"]), json={})
    assert lab_places.status_code == 403  # its scopes do not allow creating
    registrar = keycloak.user_token("registrar", "user/ServiceRequest.cruds")
    refused = await client.post("/api/v1/orders", headers=auth(registrar), json={
        "request_id": str(uuid.uuid4()), "patient_id": PATIENT_ID, "test_code": "2823-3",
        "priority": "PRIORITY_ROUTINE",
    })  # fmt: skip
    assert refused.status_code == 403  # scopes allow it, the orders service's policy does not
    assert "clinicians" in refused.json()["message"]


async def test_bad_values_are_400_with_details_never_5xx(
    gateway_to_orders: httpx.AsyncClient, keycloak: Keycloak
) -> None:
    clinician = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")
    not_a_field = await gateway_to_orders.post("/api/v1/orders", headers=auth(clinician),
                                               json={"no_such_field": 1})  # fmt: skip
    bad_id = await gateway_to_orders.get("/api/v1/orders/not-a-uuid", headers=auth(clinician))
    assert not_a_field.status_code == 400
    assert bad_id.status_code == 400
    assert bad_id.json()["details"][0]["field"] == "order_id"


@pytest.fixture
async def gateway_to_orders_over_mtls(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:  # fmt: skip
    async with orders_behind_gateway(
        servers, mongo_database, tmp_path, kafka_topic, make_gateway, mtls=True
    ) as served:
        yield served


async def test_the_gateway_calls_orders_over_mutual_tls_and_a_plaintext_caller_is_refused(
    gateway_to_orders_over_mtls: tuple[httpx.AsyncClient, int], keycloak: Keycloak
) -> None:
    client, orders_port = gateway_to_orders_over_mtls
    clinician = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")

    order_id, version = await place(client, clinician)
    read = await client.get(f"/api/v1/orders/{order_id}", headers=auth(clinician),
                            params={"min_version": version})  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{orders_port}") as plaintext:
        health = health_pb2_grpc.HealthStub(plaintext)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert read.status_code == 200, read.text
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_token_the_gateway_minted_for_one_call_is_refused_on_a_second(  # noqa: PLR0917
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory, keycloak: Keycloak,
) -> None:  # fmt: skip
    lab = Principal(subject="lab-replay", roles=frozenset({Role.LAB}))
    unknown = orders_pb2.GetOrderRequest(order_id=str(uuid.uuid4()))
    async with orders_behind_gateway(
        servers, mongo_database, tmp_path, kafka_topic, make_gateway, mtls=False
    ) as (client, orders_port):
        # The gateway's own keys and issuer, minting as it does for each call to orders.
        issuer = InternalTokenIssuer.from_pem_file(
            tmp_path / "gateway-keys.pem", issuer="clinical-platform", ttl_s=120
        )
        once = issuer.mint(lab, audience="clinical-orders")
        fresh = issuer.mint(lab, audience="clinical-orders")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{orders_port}") as channel:
            orders = orders_pb2_grpc.OrderServiceStub(channel)
            answers = [
                await _answer(orders.GetOrder(unknown, metadata=auth_metadata(token), timeout=10))
                for token in (once, once, fresh)
            ]
        clinician = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")
        through_gateway = [await place(client, clinician) for _ in range(2)]

    # Lab staff hear NOT_FOUND for an order that does not exist: the first call got that far.
    first, replayed, another = answers
    assert first[0] == another[0] == grpc.StatusCode.NOT_FOUND
    assert replayed == (
        grpc.StatusCode.UNAUTHENTICATED,
        "the bearer token is not valid: already used (jti); a single-use token serves one call",
    )
    # The gateway mints afresh for each call: one user's calls in a row all succeed.
    assert len({order_id for order_id, _ in through_gateway}) == 2


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _answer(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as failed:
        return failed.code(), failed.details() or ""
    return grpc.StatusCode.OK, ""
