"""Where the real servers for a test session are, and how they were found."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity

KAFKA_SECURITY_ENV = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
)


@dataclass(frozen=True)
class ServerEndpoints:
    """Addresses (and credentials) of the servers a test session talks to."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    vault_addr: str
    vault_token: str
    kafka_security: dict[str, str] = field(default_factory=dict)
    """KAFKA_SECURITY_PROTOCOL and friends: how to connect (the session connects as admin)."""

    @property
    def kafka(self) -> KafkaConnection:
        """How the kernel's client builders reach this session's Kafka."""
        return KafkaConnection(self.kafka_bootstrap_servers, KafkaSecurity.from_env(self.as_env()))

    def as_env(self) -> dict[str, str]:
        """The environment variables every service and the settings base read."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            **self.kafka_security,
            "MONGODB_URL": self.mongodb_url,
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_token,
        }


def endpoints_from_env(environ: Mapping[str, str] = os.environ) -> ServerEndpoints | None:
    """Existing servers named by env vars win over anything we would start ourselves."""
    names = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "VAULT_ADDR", "VAULT_TOKEN")
    if not all(environ.get(name) for name in names):
        return None
    security = {name: environ[name] for name in KAFKA_SECURITY_ENV if environ.get(name)}
    kafka, mongodb, vault, token = (environ[name] for name in names)
    return ServerEndpoints(kafka, mongodb, vault, token, kafka_security=security)


def parse_exports(text: str) -> dict[str, str]:
    """The variables of `localinfra env` output (``export NAME=value`` lines, comments aside)."""
    pairs = (
        line.removeprefix("export ").split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )
    return {name: shlex.split(value)[0] if value else "" for name, value in pairs}


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
