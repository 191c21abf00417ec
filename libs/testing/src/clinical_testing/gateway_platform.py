"""The gateway in front of the patient, orders, results and audit services, every one a real
process (``python -m <service>``) against the session's servers, trusting a real OpenID Connect
provider (Keycloak): what an HTTP client outside sees.

Every service has its own event topic, database and state folder, marked with one unique name;
they follow each other's topics only, trust only this gateway's internal key, and everything
made is removed when the context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hvac
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pymongo import AsyncMongoClient

from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak, running_keycloak
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess, free_tcp_port

PARTITIONS = 3
WRITERS = ("patient", "orders", "results")


@dataclass(frozen=True)
class GatewayPlatform:
    """``base_url`` is the gateway's HTTP root (``http://127.0.0.1:<port>``)."""

    base_url: str
    processes: Mapping[str, ServiceProcess]

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir/r4"


@contextlib.asynccontextmanager
async def keycloak_gateway_platform(
    servers: ServerEndpoints, folder: Path
) -> AsyncIterator[tuple[GatewayPlatform, Keycloak]]:
    """The local Keycloak and `running_gateway_platform` trusting it."""
    with running_keycloak() as keycloak:
        async with running_gateway_platform(servers, issuer=keycloak.issuer,
                                            folder=folder) as platform:  # fmt: skip
            yield platform, keycloak


@contextlib.asynccontextmanager
async def running_gateway_platform(
    servers: ServerEndpoints, *, issuer: str, folder: Path, rate_limit: str = "100000/minute"
) -> AsyncIterator[GatewayPlatform]:
    """The gateway (tokens of ``issuer``) and the four services, logs and state in ``folder``.
    The rate limit is high: a contract run sends many requests in a minute."""
    mark = unique_name("gw")
    logs = {service: f"{service}-{mark}" for service in WRITERS}
    topics = {service: events_topic(log) for service, log in logs.items()}
    databases = [f"test_{mark}_{name}" for name in (*WRITERS, "audit", "gateway")]
    signing_key = unique_name("test-")
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    vault.secrets.transit.create_key(name=signing_key, key_type="ed25519")
    # The gateway's internal signing key (the PEM file it reads), and the services' trust in it.
    key = Ed25519PrivateKey.generate()
    keys = folder / "gateway-keys.pem"
    keys.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    keys.chmod(0o600)
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    admin = build_admin(servers.kafka)
    await admin.start()
    started: dict[str, ServiceProcess] = {}
    try:
        for log in logs.values():
            await ensure_topic(admin, event_topic_spec(
                log, partitions=PARTITIONS, replication_factor=1, min_insync_replicas=1,
            ))  # fmt: skip
        shared = servers.as_env() | {
            "JWT_PUBLIC_KEYS": public_pem.decode(), "ACCESS_AUDIT_TOPIC": f"test.access.{mark}",
            "ACCESS_AUDIT_PARTITIONS": "1", "VAULT_AUDIT_SIGNING_KEY": signing_key,
        }  # fmt: skip
        for service, env in _service_settings(mark, topics, folder).items():
            started[service] = ServiceProcess.on_free_port(
                service, port_variable=f"{service.upper()}_GRPC_PORT", env=shared | env,
                log_path=folder / f"{service}.log",
            )  # fmt: skip
        await asyncio.gather(*(p.wait_serving(within_s=90) for p in started.values()))
        http_port = free_tcp_port()
        started["gateway"] = ServiceProcess.on_free_port(
            "gateway", port_variable="GATEWAY_GRPC_PORT", log_path=folder / "gateway.log",
            env=servers.as_env() | {
                "GATEWAY_HTTP_PORT": str(http_port), "GATEWAY_OIDC_ISSUER": issuer,
                "GATEWAY_SIGNING_KEYS_FILE": str(keys),
                "GATEWAY_STATE_DIR": str(folder / "gateway-state"),
                "GATEWAY_ACCESS_TRAIL": "false", "GATEWAY_RATE_LIMIT": rate_limit,
                "GATEWAY_EXPORT_DATABASE": f"test_{mark}_gateway",
                **{f"GATEWAY_{s.upper()}_ADDRESS": p.address for s, p in started.items()},
            },
        )  # fmt: skip
        await started["gateway"].wait_serving(within_s=60)
        await wait_http(f"http://127.0.0.1:{http_port}")
        yield GatewayPlatform(f"http://127.0.0.1:{http_port}", started)
    finally:
        for process in started.values():
            process.kill()
        await _remove(admin, mark, servers, databases)
        vault.secrets.transit.update_key_configuration(name=signing_key, deletion_allowed=True)
        vault.secrets.transit.delete_key(name=signing_key)


def _service_settings(mark: str, topics: Mapping[str, str],
                      folder: Path) -> dict[str, dict[str, str]]:  # fmt: skip
    """Each service's own variables: its log, database and state, and the topics it follows."""

    def own(service: str, **more: str) -> dict[str, str]:
        prefix = service.upper()
        return {
            f"{prefix}_MONGODB_DATABASE": f"test_{mark}_{service}",
            f"{prefix}_STATE_DIR": str(folder / service),
            **{f"{prefix}_{name}": value for name, value in more.items()},
        }

    writers = {
        service: own(service, EVENT_LOG_NAME=f"{service}-{mark}",
                     EVENT_PARTITIONS=str(PARTITIONS), PATIENT_EVENTS_TOPIC=topics["patient"])
        for service in WRITERS
    }  # fmt: skip
    writers["patient"] |= own("patient", ORDERS_EVENTS_TOPIC=topics["orders"])
    writers["orders"] |= own("orders", RESULTS_EVENTS_TOPIC=topics["results"])
    writers["results"] |= own("results", ORDERS_EVENTS_TOPIC=topics["orders"])
    pattern = "^(" + "|".join(t.replace(".", r"\.") for t in topics.values()) + ")$"
    audit = own("audit", READ_MODEL_NAME=f"audit-{mark}", EVENT_TOPIC_PATTERN=pattern,
                CHECKPOINTS_TOPIC=f"test.checkpoints.{mark}")  # fmt: skip
    return {**writers, "audit": audit}


async def _remove(admin: Any, mark: str, servers: ServerEndpoints, databases: list[str]) -> None:
    try:
        ours = [topic for topic in await admin.list_topics() if mark in topic]
        with contextlib.suppress(KafkaError):
            if ours:
                await admin.delete_topics(sorted(ours))
    finally:
        await admin.close()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
    for database in databases:
        await mongo.drop_database(database)
    await mongo.close()


async def wait_http(base_url: str, within_s: float = 30) -> None:
    """Until the gateway's HTTP health answers."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(int(within_s * 5)):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{base_url} did not answer /healthz within {within_s:.0f}s")
