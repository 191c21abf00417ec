"""Drive a service as a child process and probe it over gRPC health.

Process-level specifications (starts, reports SERVING, exits 0 on SIGTERM, exits 2 on bad
settings) for every service use this instead of each copying the same harness.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_POLL_INTERVAL_SECONDS = 0.1


def free_tcp_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def health_status(port: int, service: str = "", timeout: float = 1.0) -> str:
    """Ask the server on 127.0.0.1:`port` for its health; return the status name."""
    # A fresh channel per probe: a reused one would wait out its reconnect backoff.
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


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


class ServiceProcess:
    """``python -m module`` serving gRPC on a free loopback port; killed on leaving ``with``."""

    def __init__(
        self, module: str, *, port_variable: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.module = module
        self.port = free_tcp_port()
        self._process = subprocess.Popen(  # noqa: S603  # our interpreter and module name
            [sys.executable, "-m", module],
            env=child_environment({**(env or {}), port_variable: str(self.port)}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        """Poll health until it answers SERVING; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                _, stderr = self._process.communicate()
                raise RuntimeError(f"{self.module} exited {self._process.returncode}: {stderr}")
            try:
                if health_status(self.port) == "SERVING":
                    return
            except grpc.RpcError:
                pass  # not listening yet
            time.sleep(_POLL_INTERVAL_SECONDS)
        raise TimeoutError(f"{self.module} not SERVING on port {self.port} within {timeout}s")

    def terminate(self, within: float) -> int:
        """Send SIGTERM and return the exit code, or raise if it takes longer than `within`."""
        self._process.send_signal(signal.SIGTERM)
        self._process.communicate(timeout=within)
        return self._process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
