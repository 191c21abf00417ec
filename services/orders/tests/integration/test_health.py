"""Honest health on the real servers: a running orders service is NOT_SERVING while its Vault is
sealed, and SERVING again once Vault is unsealed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from clinical_testing.isolated import PrivateOpenBao, private_openbao
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.runtime import grpc_serving
from orders.bootstrap import GRPC_SERVICE_NAME, running_orders
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def private_vault(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateOpenBao]:
    """An OpenBao of this module's own: sealing it disturbs no other test."""
    data_dir = tmp_path_factory.mktemp("orders-health")
    with private_openbao(Path(pytestconfig.rootpath), data_dir) as vault:
        yield vault


async def test_health_is_not_serving_while_vault_is_sealed_and_serving_once_unsealed(
    orders_settings: OrdersSettings, private_vault: PrivateOpenBao
) -> None:
    settings = orders_settings.model_copy(
        update={
            "vault_addr": private_vault.address,
            "vault_token": SecretStr(private_vault.root_token),
            "vault_health_interval_seconds": 0.2,
            "health_check_interval_seconds": 0.2,
            "grpc_grace_seconds": 0,
        }
    )
    # No JWT keys: every RPC but health is refused, and health is all this test calls.
    async with (
        running_orders(settings) as orders,
        grpc_serving(settings, orders.services, health_checks=orders.health_checks) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)

        async def statuses() -> set[int]:
            """The server's and the orders service's health, as one set when they agree."""
            answers = [
                await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                for name in ("", GRPC_SERVICE_NAME)
            ]
            return {int(answer.status) for answer in answers}

        async def reported(status: int) -> bool:
            return await statuses() == {status}

        assert await eventually(lambda: reported(SERVING))

        private_vault.seal()
        assert await eventually(lambda: reported(NOT_SERVING), within_s=30)
        assert REGISTRY.get_sample_value("clinical_health_serving", {"check": "vault"}) == 0

        await asyncio.to_thread(private_vault.unseal)
        assert await eventually(lambda: reported(SERVING), within_s=30)
        assert REGISTRY.get_sample_value("clinical_health_serving", {"check": "vault"}) == 1
