"""Read-your-writes through the real orders service, in-process with its projection: PlaceOrder
answered -> GetOrder(min_version = the answer's version) answered.

Measured one call in flight, then the place-then-read loop's maximum rate (closed loop), then at
an offered load of half that maximum (open loop: a new place-then-read starts every 1/rate s
whatever the earlier ones do).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import grpc
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import patient_registry
from clinical_testing.tokens import TokenMint
from pymongo import AsyncMongoClient

from bench.topics import create_topic, delete_topics
from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings

_EVENT_PARTITIONS = 3
_WARMUP_CALLS = 10
_CLOSED_LOOP_CALLERS = 16
_PATIENTS = 64  # registered up front and ordered for in turn: only registered patients' are taken
_TIMEOUT_S = 10.0
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReadYourWritesRun:
    one_in_flight_s: list[float]
    max_per_s: float
    """Place-then-read loops completed per second with `_CLOSED_LOOP_CALLERS` in flight."""
    offered_per_s: float
    at_offered_s: list[float]


@dataclass(frozen=True)
class _Orders:
    stub: OrderServiceStub
    clinician: Metadata
    patients: Iterator[str]

    async def place_then_read(self) -> float:
        """Seconds from PlaceOrder answered to GetOrder at that version answered."""
        placed = await self.stub.PlaceOrder(
            pb.PlaceOrderRequest(
                request_id=str(uuid.uuid4()), patient_id=next(self.patients), test_code="2345-7",
                priority=pb.PRIORITY_ROUTINE,
                reason_codes=[pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="R73.9")],
            ),
            metadata=self.clinician, timeout=_TIMEOUT_S,
        )  # fmt: skip
        answered = time.perf_counter()
        await self.stub.GetOrder(
            pb.GetOrderRequest(order_id=placed.order_id, min_version=placed.version),
            metadata=self.clinician, timeout=_TIMEOUT_S,
        )  # fmt: skip
        return time.perf_counter() - answered


async def measure_read_your_writes(
    servers: ServerEndpoints, *, calls: int, seconds: float
) -> ReadYourWritesRun:
    async with _running_orders(servers) as orders:
        for _ in range(_WARMUP_CALLS):
            await orders.place_then_read()
        one_in_flight = [await orders.place_then_read() for _ in range(calls)]
        max_per_s = await _closed_loop_rate(orders, seconds)
        offered = max(max_per_s / 2, 1.0)
        at_offered = await _open_loop(orders, offered, seconds)
    return ReadYourWritesRun(one_in_flight, max_per_s, offered, at_offered)


async def _closed_loop_rate(orders: _Orders, seconds: float) -> float:
    done = 0
    until = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < until:
            await orders.place_then_read()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(_CLOSED_LOOP_CALLERS)))
    return done / (time.perf_counter() - started)


async def _open_loop(orders: _Orders, per_s: float, seconds: float) -> list[float]:
    interval = 1 / per_s
    started = time.perf_counter()
    calls = []
    for n in range(max(2, int(per_s * seconds))):
        # Arrivals on a fixed schedule, late or not: an offered load, not a closed loop.
        await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
        calls.append(asyncio.create_task(orders.place_then_read()))
    return list(await asyncio.gather(*calls))


@asynccontextmanager
async def _running_orders(servers: ServerEndpoints) -> AsyncIterator[_Orders]:
    """The orders service on throwaway topics and database; all removed after."""
    run = uuid.uuid4().hex[:12]
    log, results_log, database = f"bench-rw-{run}", f"bench-rw-results-{run}", f"bench_rw_{run}"
    access_topic = f"bench.access.{run}"
    own_topics = [events_topic(log), events_topic(results_log)]
    token_mint = TokenMint()
    with TemporaryDirectory(prefix="bench-read-side-") as state_dir:
        settings = OrdersSettings.model_validate(
            {
                "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
                "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
                "MONGODB_URL": servers.mongodb_url, "grpc_port": 0,
                "event_partitions": _EVENT_PARTITIONS,
                "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
                "event_log_name": log, "mongodb_database": database,
                "state_dir": Path(state_dir) / "orders",
                "results_events_topic": events_topic(results_log),
            }
        )  # fmt: skip
        try:
            await create_topic(servers.kafka_bootstrap_servers, access_topic, partitions=1)
            async with AsyncExitStack() as stack:
                running = await stack.enter_async_context(
                    running_orders(settings, verifier=token_mint.verifier_for("orders"))
                )
                server = await start_grpc_server(
                    host="127.0.0.1", port=0, services=running.services
                )
                stack.push_async_callback(server.stop, 0)
                channel = await stack.enter_async_context(
                    grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
                )
                clinician = token_mint.metadata("bench-clinician", Role.CLINICIAN)
                async with patient_registry(settings) as registry:
                    patients = [await registry.register() for _ in range(_PATIENTS)]
                yield _Orders(OrderServiceStub(channel), clinician, itertools.cycle(patients))
        finally:
            dead_letters = [dead_letter_topic(topic) for topic in own_topics]
            await delete_topics(
                servers.kafka_bootstrap_servers, [access_topic, *own_topics, *dead_letters]
            )
            client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
            try:
                await client.drop_database(database)
            finally:
                await client.close()
