"""Services as real processes (``python -m <service>``): start, await SERVING, stop.

Only the public surface is used: the process, its environment and its gRPC health service.
Process-level specifications (starts, reports SERVING, exits 0 on SIGTERM, exits 2 on bad
settings) and the e2e tests all use this one harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_SERVING = health_pb2.HealthCheckResponse.SERVING


# Below the kernel's ephemeral range (32768-60999 by default): a port the kernel hands out for
# ``bind(0)`` is also one it hands to outgoing connections, so a server started on it a little
# later can find it taken by some client's socket. Our fixed ports (18xxx) lie below this range.
_TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_tcp_port() -> int:
    """A loopback port that was free a moment ago, outside the ephemeral range."""
    for port in random.sample(_TEST_PORTS, 64):
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_TEST_PORTS}")


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment plus `overrides`, never exporting telemetry anywhere."""
    environment = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    return environment | dict(overrides)


def run_until_exit(
    module: str, env: Mapping[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module`` to completion and capture its output."""
    return subprocess.run(  # noqa: S603  # our interpreter and module name, not user input
        [sys.executable, "-m", module],
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServiceExitedError(Exception):
    """A service process ended while we waited for it to serve."""


async def wait_until_serving(
    address: str,
    *,
    within_s: float,
    exited: Callable[[], str | None] = lambda: None,
    service: str = "",
    status: int = _SERVING,
) -> None:
    """Poll gRPC health at ``address`` until it answers SERVING (or ``status``) for ``service``
    ("" = server).

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
                if answer.status == status:
                    return
            if time.monotonic() > deadline:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                raise TimeoutError(f"{address} did not report {name} within {within_s:.0f}s")
            await asyncio.sleep(0.2)


class ServiceProcess:
    """One ``python -m <module>`` child with its output in ``log_path``; killed on leaving ``with``.

    ``ServiceProcess.on_free_port("orders", port_variable="ORDERS_GRPC_PORT", env=...)`` picks
    the port and the log file itself.
    """

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

    @classmethod
    def on_free_port(
        cls,
        module: str,
        *,
        port_variable: str,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> ServiceProcess:
        """Start ``module`` on a free loopback port, with the test's environment plus ``env``."""
        port = free_tcp_port()
        if log_path is None:
            log_path = Path(tempfile.mkdtemp(prefix=f"{module}-")) / f"{module}.log"
        environment = child_environment({**(env or {}), port_variable: str(port)})
        return cls(module, port, environment, log_path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()

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

    async def wait_health(self, status: int, within_s: float = 60) -> None:
        """Until the server's health answers ``status`` (NOT_SERVING, say)."""
        await wait_until_serving(self.address, within_s=within_s, exited=self.exited, status=status)

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
