"""The project's own native servers (infra/local), started through the localinfra command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinical_testing.endpoints import KAFKA_SECURITY_ENV, ServerEndpoints, parse_exports


class NativeServers:
    """Runs ``python3 -m localinfra`` from a checkout; stops at the end only what it started."""

    def __init__(self, repo_root: Path, environ: dict[str, str] | None = None) -> None:
        self._repo_root = repo_root
        self._env = dict(os.environ if environ is None else environ)
        self._env["PYTHONPATH"] = str(repo_root / "infra" / "local")
        self._started_here: list[str] = []

    def _localinfra(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # Our own interpreter running our own module with fixed arguments.
        completed = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "localinfra", *args],
            cwd=self._repo_root,
            env=self._env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and completed.returncode != 0:
            raise RuntimeError(f"localinfra {' '.join(args)} failed:\n{completed.stderr}")
        return completed

    def start(self) -> ServerEndpoints:
        """Bring the servers up (a no-op for those already running) and return their endpoints."""
        output = self._localinfra("up").stdout
        self._started_here = [
            line.split()[0] for line in output.splitlines() if " started " in f"{line} "
        ]
        env = parse_exports(self._localinfra("env").stdout)
        return ServerEndpoints(
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            mongodb_url=env["MONGODB_URL"],
            vault_addr=env["VAULT_ADDR"],
            vault_token=env["VAULT_TOKEN"],
            kafka_security={name: env[name] for name in KAFKA_SECURITY_ENV if name in env},
        )

    def service_env(self, service: str) -> dict[str, str]:
        """The variables that connect as one service: its Kafka principal and Vault token."""
        return parse_exports(self._localinfra("env", service).stdout)

    def stop(self) -> None:
        """Stop the servers this session started; leave ones a developer started alone."""
        if self._started_here:
            self._localinfra("down", *self._started_here, check=False)
