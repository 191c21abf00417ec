"""E2e plumbing: services started as real processes against the session's servers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.isolated import SERVER_ENV
from clinical_testing.service_process import ServiceProcess, StartService, free_tcp_port
from clinical_testing.tokens import TokenMint


# Module scope: starting three services takes ~10 s, so a module's tests share one set.
@pytest.fixture(scope="module")
def start_service(
    servers: ServerEndpoints, token_mint: TokenMint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartService]:
    """``start_service("orders", ORDERS_EVENT_LOG_NAME=...)``: ``python -m orders`` on a free port.

    The process gets the session's servers, trusts `token_mint`, keeps its state and log
    in a temporary folder and is killed at teardown if the test did not stop it.
    """
    tmp_path = tmp_path_factory.mktemp("services")
    started: list[ServiceProcess] = []
    inherited = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}

    def start(module: str, **settings: str) -> ServiceProcess:
        prefix = module.upper()
        port = free_tcp_port()
        env = inherited | servers.as_env() | {
            "JWT_PUBLIC_KEYS": token_mint.public_pem,
            f"{prefix}_GRPC_PORT": str(port),
            f"{prefix}_STATE_DIR": str(tmp_path / "state" / module),
        } | settings  # fmt: skip
        process = ServiceProcess(module, port, env, tmp_path / f"{module}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
