"""Services as real processes (``python -m <service>``) for e2e tests: start, await, stop.

Only the public surface is used: the process, its environment and its gRPC health service.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_SERVING = health_pb2.HealthCheckResponse.SERVING


class ServiceExitedError(Exception):
    """A service process ended while we waited for it to serve."""


async def wait_until_serving(
    address: str,
    *,
    within_s: float,
    exited: Callable[[], str | None] = lambda: None,
    service: str = "",
) -> None:
    """Poll gRPC health at ``address`` until it answers SERVING for ``service`` ("" = server).

    ``exited`` returns a description when the process behind the address has died, so a crash
    fails at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + within_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if (reason := exited()) is not None:
                raise ServiceExitedError(f"{address}: {reason}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if answer.status == _SERVING:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} did not report SERVING within {within_s:.0f}s")
            await asyncio.sleep(0.2)


class ServiceProcess:
    """One ``python -m <module>`` child with its output in ``log_path``."""

    def __init__(self, module: str, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.module = module
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            # Our own interpreter running a workspace module with fixed arguments.
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", module],
                env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def exited(self) -> str | None:
        """None while running; else the exit code and the end of the log."""
        code = self.process.poll()
        if code is None:
            return None
        return f"{self.module} exited with {code}; its log ends with:\n{self.log_tail()}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_serving(self, within_s: float = 60) -> None:
        await wait_until_serving(self.address, within_s=within_s, exited=self.exited)

    async def terminate(self, grace_s: float = 30) -> int:
        """SIGTERM, then the exit code (SIGKILL and a TimeoutError if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"{self.module} ignored SIGTERM for {grace_s:.0f}s:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


StartService = Callable[..., ServiceProcess]
"""What the e2e ``start_service`` fixture hands a test: ``start("orders", **env) -> process``."""
