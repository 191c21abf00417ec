"""The local servers, in start order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ferretdb, kafka, keycloak, openbao, postgresql
from .config import InfraConfig
from .processes import ManagedProcess


@dataclass(frozen=True)
class Server:
    name: str
    address: Callable[[InfraConfig], str]
    process: Callable[[InfraConfig], ManagedProcess]
    install: Callable[[InfraConfig], object]
    start: Callable[[InfraConfig], bool]


SERVERS = (
    Server("kafka", lambda c: c.kafka_bootstrap_servers, kafka.process, kafka.install, kafka.start),
    Server("postgresql", postgresql.url, postgresql.process, postgresql.install, postgresql.start),
    Server("ferretdb", lambda c: c.mongodb_url, ferretdb.process, ferretdb.install, ferretdb.start),
    Server("openbao", lambda c: c.vault_addr, openbao.process, openbao.install, openbao.start),
    Server("keycloak", keycloak.issuer, keycloak.process, keycloak.install, keycloak.start),
)
