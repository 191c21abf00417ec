"""``python -m clinical_platform.healthcheck``: a pod's probe when its gRPC is mutual TLS.

The kubelet's own gRPC probe speaks plaintext only, and a server in production mode answers
nothing without a client certificate its CA signed. This asks the standard health service over
the same mutual TLS the services use (the pod's own certificate, which serves client use too)
and exits 0 only for SERVING: 1 for any other answer or failure, with one line on stderr. With
``--answering`` (liveness) any answer will do: a service that is NOT_SERVING because Vault is
sealed is alive and waits, unready, instead of being restarted.

    python -m clinical_platform.healthcheck --port 8443 \\
        --cert tls.crt --key tls.key --ca ca.crt --server-name orders
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinical_platform.grpc_tls import TlsFiles

_SERVING = health_pb2.HealthCheckResponse.SERVING


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m clinical_platform.healthcheck")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service", default="", help="a hosted service's name; '' the server")
    parser.add_argument("--cert", type=Path, help="this pod's certificate (with --key: TLS)")
    parser.add_argument("--key", type=Path)
    parser.add_argument("--ca", type=Path, help="the CA the server's certificate is checked by")
    parser.add_argument("--server-name", default="", help="the name the server's certificate has")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--answering", action="store_true", help="any answer is a pass")
    arguments = parser.parse_args(argv)
    if (arguments.cert is None) != (arguments.key is None):
        parser.error("--cert and --key come together")
    return arguments


async def _status(arguments: argparse.Namespace) -> str:
    """The health service's answer, by name (SERVING, NOT_SERVING, ...)."""
    address = f"{arguments.host}:{arguments.port}"
    if arguments.cert is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        tls = TlsFiles(arguments.cert, arguments.key, arguments.ca)
        options = [("grpc.ssl_target_name_override", arguments.server_name)]
        channel = grpc.aio.secure_channel(
            address, tls.channel_credentials(), options=options if arguments.server_name else None
        )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=arguments.service)
        reply = await stub.Check(request, timeout=arguments.timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    try:
        status = asyncio.run(_status(arguments))
    except grpc.aio.AioRpcError as failed:
        print(f"health: {failed.code().name}", file=sys.stderr)
        return 1
    if status != health_pb2.HealthCheckResponse.ServingStatus.Name(_SERVING) and not (
        arguments.answering
    ):
        print(f"health: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
