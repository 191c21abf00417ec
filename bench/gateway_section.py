"""The gateway section: the same read through the gateway (HTTP, a Keycloak token verified,
exchanged for an internal one) and straight to the orders service (gRPC), in one run; and the
gateway's authentication overhead (verify + map + mint) per request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import grpc
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import running_keycloak
from clinical_testing.patients import patient_registry
from clinical_testing.service_process import ServiceProcess, free_tcp_port
from pymongo import AsyncMongoClient

from bench.load import percentile_ms
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import create_topic, delete_topics
from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Principal, Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.bootstrap import gateway_http_app
from gateway.settings import GatewaySettings
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings

_CALLERS = 16
_AUDIENCE = "clinical-orders"
Call = Callable[[], Awaitable[object]]


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    seconds = 1.0 if options.quick else 5.0
    one_in_flight = 50 if options.quick else 500
    with running_keycloak() as keycloak, TemporaryDirectory(prefix="bench-gateway-") as tmp:
        # Lab staff read every order: the same read both ways, with no care relationship to
        # look up (a clinician reads only orders of patients in their care).
        token = keycloak.user_token("lab", "user/ServiceRequest.rs")
        keys = Path(tmp) / "keys.pem"
        rotate_key_file(keys)
        async with _orders_and_gateway(servers, keycloak.issuer, keys, Path(tmp), token) as parts:
            direct, via_gateway, authenticate, whoami = parts
            progress(f"gateway: GetOrder direct and through the gateway, {_CALLERS} callers")
            await _warm_up(direct, via_gateway)
            direct_rps = await _closed_loop(direct, seconds)
            gateway_rps = await _closed_loop(via_gateway, seconds)
            direct_s = [await _timed(direct) for _ in range(one_in_flight)]
            gateway_s = [await _timed(via_gateway) for _ in range(one_in_flight)]
            auth_s = [await _timed(lambda: authenticate(token)) for _ in range(one_in_flight)]
            whoami_s = [await _timed(whoami) for _ in range(one_in_flight)]
    return [
        Figure("gateway_rps", gateway_rps, "/s", 0,
               f"GET /api/v1/orders/{{id}} through the gateway (HTTP), {_CALLERS} callers"),
        Figure("gateway_direct_rps", direct_rps, "/s", 0,
               "the same GetOrder straight to orders (gRPC, an internal token minted per call)"),
        Figure("gateway_vs_direct", gateway_rps / direct_rps, "ratio", 2,
               "gateway_rps / gateway_direct_rps (target >= 0.7)"),
        Figure("gateway_read_p50_ms", percentile_ms(gateway_s, 50), "ms", 2,
               "one in flight, through the gateway"),
        Figure("gateway_direct_read_p50_ms", percentile_ms(direct_s, 50), "ms", 2,
               "one in flight, straight to orders"),
        Figure("gateway_whoami_p50_ms", percentile_ms(whoami_s, 50), "ms", 2,
               "GET /api/v1/whoami: HTTP in and out and authentication, no service call"),
        Figure("gateway_auth_overhead_ms_p50", percentile_ms(auth_s, 50), "ms", 3,
               "verify the Keycloak token (no cache: its first use), map it, mint the internal "
               "token"),
        Figure("gateway_auth_overhead_ms_p99", percentile_ms(auth_s, 99), "ms", 3,
               "its 99th pct"),
    ]  # fmt: skip


async def _timed(call: Call) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def _warm_up(*calls: Call) -> None:
    for call in calls:
        for _ in range(20):
            await call()


async def _closed_loop(call: Call, seconds: float) -> float:
    done = 0
    until = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < until:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(_CALLERS)))
    return done / (time.perf_counter() - started)


@asynccontextmanager
async def _orders_and_gateway(
    servers: ServerEndpoints, issuer: str, keys: Path, tmp: Path, token: str
) -> AsyncIterator[tuple[Call, Call, Callable[[str], Awaitable[object]], Call]]:
    run = uuid.uuid4().hex[:12]
    log, database, access_topic = f"bench-gw-{run}", f"bench_gw_{run}", f"bench.access.{run}"
    tokens = InternalTokenIssuer.from_pem_file(keys, issuer="clinical-platform", ttl_s=900)
    verifier = TokenVerifier.from_pem(tokens.public_pem(), issuer="clinical-platform",
                                      audience=_AUDIENCE)  # fmt: skip
    settings = OrdersSettings.model_validate({
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
        "event_log_name": log, "mongodb_database": database, "state_dir": tmp / "orders",
    })  # fmt: skip
    try:
        await create_topic(servers.kafka_bootstrap_servers, access_topic, partitions=1)
        async with AsyncExitStack() as stack:
            orders = await stack.enter_async_context(running_orders(settings, verifier=verifier))
            server = await start_grpc_server(host="127.0.0.1", port=0, services=orders.services)
            stack.push_async_callback(server.stop, 0)
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
            )
            stub = OrderServiceStub(channel)
            clinician = Principal("bench-clinician", frozenset({Role.CLINICIAN}))
            orderer = (("authorization", f"Bearer {tokens.mint(clinician, audience=_AUDIENCE)}"),)
            lab = Principal("bench-lab", frozenset({Role.LAB}))
            async with patient_registry(settings) as registry:  # orders takes no other patient
                patient_id = await registry.register()
            placed = await stub.PlaceOrder(pb.PlaceOrderRequest(
                request_id=str(uuid.uuid4()), patient_id=patient_id, test_code="2345-7",
                priority=pb.PRIORITY_ROUTINE,
                reason_codes=[pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="R73.9")],
            ), metadata=orderer, timeout=10)  # fmt: skip
            read = pb.GetOrderRequest(order_id=placed.order_id, min_version=placed.version)
            gateway_env = {
                "GATEWAY_HTTP_PORT": str(free_tcp_port()), "GATEWAY_OIDC_ISSUER": issuer,
                "GATEWAY_SIGNING_KEYS_FILE": str(keys), "GATEWAY_RATE_LIMIT": "10000000/minute",
                "GATEWAY_ORDERS_ADDRESS": f"127.0.0.1:{server.port}",
                "GATEWAY_ORDERS_AUDIENCE": _AUDIENCE, "LOG_LEVEL": "WARNING",
                "GATEWAY_STATE_DIR": str(tmp / "gateway"), "ACCESS_AUDIT_TOPIC": access_topic,
            }  # fmt: skip
            # The gateway in its own process, as deployed: the callers here do not share its
            # event loop (or its core).
            gateway = stack.enter_context(ServiceProcess.on_free_port(
                "gateway", port_variable="GATEWAY_GRPC_PORT", env=gateway_env
            ))  # fmt: skip
            await gateway.wait_serving()
            # In this process, only to time authentication on its own.
            gateway_settings = GatewaySettings(
                oidc_issuer=issuer, signing_keys_file=keys, token_cache_size=0, access_trail=False
            )
            _, app = await stack.enter_async_context(gateway_http_app(gateway_settings))
            client = await stack.enter_async_context(aiohttp.ClientSession(
                f"http://127.0.0.1:{gateway_env['GATEWAY_HTTP_PORT']}",
                connector=aiohttp.TCPConnector(limit=_CALLERS),
            ))  # fmt: skip
            path = f"/api/v1/orders/{placed.order_id}?min_version={placed.version}"
            headers = {"authorization": f"Bearer {token}"}

            async def direct() -> object:
                # A token of its own per call, as the gateway mints them: each serves one call.
                internal = (("authorization", f"Bearer {tokens.mint(lab, audience=_AUDIENCE)}"),)
                return await stub.GetOrder(read, metadata=internal, timeout=10)

            async def via_gateway() -> object:
                async with client.get(path, headers=headers) as answer:
                    answer.raise_for_status()
                    return await answer.read()

            async def authenticate(bearer: str) -> object:
                caller = await app.authenticate(bearer)
                return app.tokens.mint(caller.principal, audience=_AUDIENCE)

            async def whoami() -> object:
                async with client.get("/api/v1/whoami", headers=headers) as answer:
                    answer.raise_for_status()
                    return await answer.read()

            yield direct, via_gateway, authenticate, whoami
    finally:
        topics = [events_topic(log), dead_letter_topic(events_topic(log)), access_topic]
        await delete_topics(servers.kafka_bootstrap_servers, topics)
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        try:
            await mongo.drop_database(database)
        finally:
            await mongo.close()
