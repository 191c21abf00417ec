"""A private set of native servers (own data folder, own free ports) for tests that kill them.

The session's shared servers stay untouched; the download and build cache is shared, so
nothing is rebuilt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hvac

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


class PrivateOpenBao:
    """An OpenBao of a test's own, set up by localinfra exactly like the shared one (Transit
    keys, key store, policies), so sealing it disturbs no other test."""

    def __init__(self, infra: IsolatedInfra) -> None:
        self.infra = infra
        self.address = f"http://127.0.0.1:{infra.env['CLINICAL_VAULT_PORT']}"
        init = json.loads((infra.data_dir / "openbao" / "init.json").read_text())
        self.root_token: str = init["root_token"]

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token)

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        """Unsealed with the key localinfra keeps (its start unseals a running server)."""
        unsealed = self.infra.localinfra("up", "openbao")
        if unsealed.returncode != 0:
            raise RuntimeError(f"unsealing the private OpenBao failed: {unsealed.stderr}")


@contextmanager
def private_openbao(repo_root: Path, data_dir: Path) -> Iterator[PrivateOpenBao]:
    """Start a private OpenBao in ``data_dir`` on a free port; stop it afterwards."""
    infra = IsolatedInfra(repo_root, data_dir)
    started = infra.localinfra("up", "openbao")
    if started.returncode != 0:
        raise RuntimeError(f"the private OpenBao did not start: {started.stderr}")
    try:
        yield PrivateOpenBao(infra)
    finally:
        infra.localinfra("down", "openbao")
