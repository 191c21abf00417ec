"""Where the real servers for a test session are, and how they were found."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_platform.clients.kafka import KafkaConnection


@dataclass(frozen=True)
class ServerEndpoints:
    """Addresses (and the Vault token) of the three servers a test session talks to."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    vault_addr: str
    vault_token: str

    @property
    def kafka(self) -> KafkaConnection:
        """How the kernel's client builders reach this session's Kafka."""
        return KafkaConnection(self.kafka_bootstrap_servers)

    def as_env(self) -> dict[str, str]:
        """The environment variables every service and the settings base read."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "MONGODB_URL": self.mongodb_url,
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_token,
        }


def endpoints_from_env(environ: Mapping[str, str] = os.environ) -> ServerEndpoints | None:
    """Existing servers named by env vars win over anything we would start ourselves."""
    names = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "VAULT_ADDR", "VAULT_TOKEN")
    if not all(environ.get(name) for name in names):
        return None
    return ServerEndpoints(*(environ[name] for name in names))


def isolated_service_values(
    servers: ServerEndpoints,
    *,
    event_log_name: str,
    database: str,
    state_dir: Path,
    access_topic: str,
) -> dict[str, Any]:
    """Settings values of a service under test with an event log (3 partitions), database,
    state folder and access topic of its own, served on a free port."""
    return servers.as_env() | {
        "grpc_port": 0,
        "event_log_name": event_log_name,
        "mongodb_database": database,
        "state_dir": state_dir,
        "event_partitions": 3,
        "read_wait_max_s": 5.0,
        "ACCESS_AUDIT_TOPIC": access_topic,
        "ACCESS_AUDIT_PARTITIONS": 1,
    }
