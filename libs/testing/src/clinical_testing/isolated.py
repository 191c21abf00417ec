"""A private set of native servers (own data folder, own free ports) for tests that kill them.

The session's shared servers stay untouched; the download and build cache is shared, so
nothing is rebuilt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity
from clinical_testing.endpoints import KAFKA_SECURITY_ENV, parse_exports
from clinical_testing.service_process import free_tcp_port

SERVER_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    *KAFKA_SECURITY_ENV,
)


class IsolatedInfra:
    """`localinfra` and `make infra-*` pointed at their own folder and ports."""

    def __init__(self, repo_root: Path, data_dir: Path) -> None:
        self.repo_root = repo_root
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
        self.env.update(
            CLINICAL_INFRA_DIR=str(data_dir),
            CLINICAL_KAFKA_PORT=str(free_tcp_port()),
            CLINICAL_KAFKA_CONTROLLER_PORT=str(free_tcp_port()),
            CLINICAL_MONGO_PORT=str(free_tcp_port()),
            CLINICAL_POSTGRES_PORT=str(free_tcp_port()),
            CLINICAL_VAULT_PORT=str(free_tcp_port()),
            CLINICAL_KEYCLOAK_PORT=str(free_tcp_port()),
            PYTHONPATH=str(repo_root / "infra" / "local"),
        )

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.env['CLINICAL_KAFKA_PORT']}"

    @property
    def kafka(self) -> KafkaConnection:
        """A connection to this instance's broker, as its admin (its own CA and passwords)."""
        exports = parse_exports(self.localinfra("env").stdout)
        return KafkaConnection(self.kafka_bootstrap_servers, KafkaSecurity.from_env(exports))

    def make(self, *targets: str) -> subprocess.CompletedProcess[str]:
        """Run `make -s <targets>` in the repository with this instance's environment."""
        return subprocess.run(  # noqa: S603 - fixed arguments
            ["make", "-s", *targets],  # noqa: S607 - make from PATH, as a developer runs it
            cwd=self.repo_root, env=self.env, capture_output=True, text=True, check=False,
            timeout=900,
        )  # fmt: skip

    def localinfra(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the localinfra command directly (no make, no venv sync)."""
        # Our own interpreter running our own module with fixed arguments.
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "localinfra", *args],
            cwd=self.repo_root, env=self.env, capture_output=True, text=True, check=False,
            timeout=900,
        )  # fmt: skip

    def pid(self, server: str) -> int:
        return int((self.data_dir / server / f"{server}.pid").read_text())
