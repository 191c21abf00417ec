"""A tiny hand-written gRPC service to host, so kernel tests need no generated stubs."""

import grpc
import pytest

from clinical_platform.grpc_server import GrpcService

SAMPLE_SERVICE_NAME = "clinical.sample.v1.SampleService"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def _register_sample_service(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SAMPLE_SERVICE_NAME, {"Echo": handler}),)
    )


@pytest.fixture
def sample_service() -> GrpcService:
    """A servicer the way a service hands one to the kernel: full name plus registration."""
    return GrpcService(SAMPLE_SERVICE_NAME, _register_sample_service)
