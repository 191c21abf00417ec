"""Throwaway servers in Docker via testcontainers, used when a Docker engine answers."""

from __future__ import annotations

import secrets
from contextlib import ExitStack

import hvac

from clinical_platform.security.vault_adapters import ensure_key_store
from clinical_testing.endpoints import ServerEndpoints

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
FERRETDB_IMAGE = "ghcr.io/ferretdb/ferretdb:1.24.2"
OPENBAO_IMAGE = "quay.io/openbao/openbao:2.4.0"


def docker_engine_answers() -> bool:
    """True when a Docker engine is reachable from this process."""
    try:
        import docker  # noqa: PLC0415 - comes with testcontainers; only needed on this path

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class ContainerServers:
    """Kafka (KRaft), FerretDB (SQLite) and OpenBao (dev mode) containers for one session."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def start(self) -> ServerEndpoints:
        # Imported here: testcontainers talks to Docker on import in some versions.
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415
        from testcontainers.core.wait_strategies import (  # noqa: PLC0415
            HttpWaitStrategy,
            LogMessageWaitStrategy,
        )

        kafka = self._stack.enter_context(KafkaContainer(KAFKA_IMAGE).with_kraft())
        ferretdb = self._stack.enter_context(
            DockerContainer(FERRETDB_IMAGE)
            .with_env("FERRETDB_HANDLER", "sqlite")
            .with_env("FERRETDB_TELEMETRY", "disable")
            .with_exposed_ports(27017)
            .waiting_for(LogMessageWaitStrategy("Listening on TCP"))
        )
        token = secrets.token_urlsafe(24)
        openbao = self._stack.enter_context(
            DockerContainer(OPENBAO_IMAGE)
            .with_command(["server", "-dev", "-dev-listen-address=0.0.0.0:8200"])
            .with_env("BAO_DEV_ROOT_TOKEN_ID", token)
            .with_exposed_ports(8200)
            .waiting_for(HttpWaitStrategy(8200, "/v1/sys/health").for_status_code(200))
        )
        host = openbao.get_container_host_ip()
        vault_addr = f"http://{host}:{openbao.get_exposed_port(8200)}"
        _configure_vault(hvac.Client(url=vault_addr, token=token))
        mongo_host = ferretdb.get_container_host_ip()
        return ServerEndpoints(
            kafka_bootstrap_servers=kafka.get_bootstrap_server(),
            mongodb_url=f"mongodb://{mongo_host}:{ferretdb.get_exposed_port(27017)}/",
            vault_addr=vault_addr,
            vault_token=token,
        )

    def stop(self) -> None:
        self._stack.close()


def _configure_vault(vault: hvac.Client) -> None:
    """What infra/local/localinfra/openbao.py sets up: Transit with the default keys, and the
    KV v2 mount for wrapped data keys (docs/security.md)."""
    vault.sys.enable_secrets_engine("transit")
    vault.secrets.transit.create_key(name="clinical-phi", key_type="aes256-gcm96")
    vault.secrets.transit.create_key(name="clinical-audit", key_type="ed25519")
    ensure_key_store(vault, "clinical-keys")
