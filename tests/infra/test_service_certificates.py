"""The local CA issues service certificates, and a server with them speaks mutual TLS only.

No servers of the local stack are needed: a CA of the test's own (made as localinfra makes
Kafka's) and a gRPC server on an ephemeral port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinical_platform import healthcheck
from clinical_platform.grpc_server import GrpcServer, start_grpc_server
from clinical_platform.grpc_tls import TlsFiles, open_channel
from localinfra import certificates

pytestmark = pytest.mark.unit

SERVING = health_pb2.HealthCheckResponse.SERVING


def _tls(found: certificates.ServiceCertificate) -> TlsFiles:
    return TlsFiles(found.cert_file, found.key_file, found.ca_file)


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ca")
    certificates.make_ca(folder)
    return folder


@pytest.fixture
async def orders_over_mtls(local_ca: Path) -> AsyncIterator[GrpcServer]:
    credentials = _tls(certificates.service_certificate(local_ca, "orders")).server_credentials()
    server = await start_grpc_server(host="127.0.0.1", port=0, credentials=credentials)
    yield server
    await server.stop(0)


async def _health(address: str, tls: TlsFiles | None) -> int:
    async with open_channel(address, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(response.status)


def test_a_service_certificate_names_the_service_for_serving_and_calling(local_ca: Path) -> None:
    found = certificates.service_certificate(local_ca, "results")
    again = certificates.service_certificate(local_ca, "results")

    assert again == found
    assert found.key_file.stat().st_mode & 0o077 == 0
    assert found.env("results") == {
        "RESULTS_GRPC_TLS_CERT_FILE": str(found.cert_file),
        "RESULTS_GRPC_TLS_KEY_FILE": str(found.key_file),
        "RESULTS_GRPC_TLS_CA_FILE": str(local_ca / "ca.crt"),
    }


async def test_a_caller_with_a_certificate_of_the_platform_ca_is_served(
    orders_over_mtls: GrpcServer, local_ca: Path
) -> None:
    gateway = _tls(certificates.service_certificate(local_ca, "gateway"))

    assert await _health(f"127.0.0.1:{orders_over_mtls.port}", gateway) == SERVING


async def test_callers_without_a_platform_certificate_are_refused_at_the_handshake(
    orders_over_mtls: GrpcServer, local_ca: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{orders_over_mtls.port}"
    platform_ca = local_ca / "ca.crt"
    other_ca = tmp_path / "other"
    other_ca.mkdir()
    certificates.make_ca(other_ca)
    stranger = certificates.service_certificate(other_ca, "gateway")
    callers = {
        "plaintext": None,
        "TLS without a client certificate": grpc.ssl_channel_credentials(
            root_certificates=platform_ca.read_bytes()
        ),
        "a certificate of another CA": grpc.ssl_channel_credentials(
            root_certificates=platform_ca.read_bytes(),
            private_key=stranger.key_file.read_bytes(),
            certificate_chain=stranger.cert_file.read_bytes(),
        ),
    }

    for caller, credentials in callers.items():
        channel = (
            grpc.aio.insecure_channel(address)
            if credentials is None
            else grpc.aio.secure_channel(address, credentials)
        )
        async with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, caller


def _probe(server: GrpcServer, found: certificates.ServiceCertificate | None) -> list[str]:
    """The arguments of the pods' exec probe (deploy/helm), as the chart passes them."""
    arguments = ["--port", str(server.port), "--timeout", "5"]
    if found is not None:
        arguments += ["--cert", str(found.cert_file), "--key", str(found.key_file)]
        arguments += ["--ca", str(found.ca_file), "--server-name", "clinical-orders"]
    return arguments


async def test_the_pods_probe_asks_the_health_service_over_mutual_tls(
    orders_over_mtls: GrpcServer, local_ca: Path
) -> None:
    own = certificates.service_certificate(local_ca, "orders")

    serving = await asyncio.to_thread(healthcheck.main, _probe(orders_over_mtls, own))
    await orders_over_mtls.set_serving(False)
    not_serving = await asyncio.to_thread(healthcheck.main, _probe(orders_over_mtls, own))
    alive = await asyncio.to_thread(
        healthcheck.main, [*_probe(orders_over_mtls, own), "--answering"]
    )
    plaintext = await asyncio.to_thread(healthcheck.main, _probe(orders_over_mtls, None))

    assert (serving, not_serving, alive, plaintext) == (0, 1, 0, 1)
