"""pytest fixtures: the session's real servers, and isolated topics, databases and keys per test.

Which servers (documented in the README, "Tests"):
1. env vars KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, VAULT_ADDR and VAULT_TOKEN, all set: use those;
2. else, when a Docker engine answers: testcontainers;
3. else: the project's native servers from infra/local, started if they are not running and
   stopped at the end if this session started them (CLINICAL_KEEP_INFRA=1 keeps them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import hvac
import pytest
from aiokafka.admin import NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.clients.kafka import build_admin
from clinical_testing.containers import ContainerServers, docker_engine_answers
from clinical_testing.endpoints import ServerEndpoints, endpoints_from_env
from clinical_testing.native import NativeServers
from clinical_testing.serving import bad_request_fields

pytest_plugins = [
    "clinical_testing.eventlog",
    "clinical_testing.patients",
    "clinical_testing.tokens",
]

TopicFactory = Callable[..., Awaitable[str]]
TransitKeyFactory = Callable[..., str]


def unique_name(prefix: str) -> str:
    """A name no other test (or earlier run) uses: prefix plus 12 random hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def servers(pytestconfig: pytest.Config) -> Iterator[ServerEndpoints]:
    """The real Kafka, MongoDB-protocol and Vault-API servers for this test session."""
    existing = endpoints_from_env()
    if existing is not None:
        yield existing
        return
    runner: ContainerServers | NativeServers
    if docker_engine_answers():
        runner = ContainerServers()
    else:
        runner = NativeServers(Path(pytestconfig.rootpath))
    try:
        endpoints = runner.start()
        # Connections built by hand from the bootstrap servers read these, as settings do.
        os.environ.update(endpoints.kafka_security)
        yield endpoints
    finally:
        if not os.environ.get("CLINICAL_KEEP_INFRA"):
            runner.stop()


@pytest.fixture
async def kafka_topic(servers: ServerEndpoints) -> AsyncIterator[TopicFactory]:
    """Create topics only this test uses; ``await kafka_topic(partitions=3, **configs)``."""
    admin = build_admin(servers.kafka)
    await admin.start()
    created: list[str] = []

    async def create(prefix: str = "test.", partitions: int = 1, **configs: Any) -> str:
        name = unique_name(prefix)
        topic_configs = {key.replace("_", "."): str(value) for key, value in configs.items()}
        await admin.create_topics(
            [NewTopic(name, partitions, replication_factor=1, topic_configs=topic_configs)]
        )
        created.append(name)
        return name

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()


@pytest.fixture
async def mongo_database(servers: ServerEndpoints) -> AsyncIterator[AsyncDatabase[Any]]:
    """A database only this test uses, dropped afterwards."""
    async with _fresh_database(servers) as database:
        yield database


@pytest.fixture
async def second_database(servers: ServerEndpoints) -> AsyncIterator[AsyncDatabase[Any]]:
    """Another database only this test uses (e.g. to rebuild a read model into), dropped after."""
    async with _fresh_database(servers) as database:
        yield database


@asynccontextmanager
async def _fresh_database(servers: ServerEndpoints) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url, tz_aware=True)
    name = unique_name("test_")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="session")
def service_credentials(
    pytestconfig: pytest.Config, servers: ServerEndpoints
) -> Callable[[str], dict[str, str]]:
    """``service_credentials("orders")``: the variables that connect as that service (its
    Kafka principal and Vault token), as `make run` gives them; local servers only."""
    if endpoints_from_env() is not None or docker_engine_answers():
        pytest.skip("per-service credentials come from the project's own local servers")
    native = NativeServers(Path(pytestconfig.rootpath))
    return native.service_env


@pytest.fixture
def vault(servers: ServerEndpoints) -> hvac.Client:
    """An hvac client authenticated against the session's Vault-API server."""
    return hvac.Client(url=servers.vault_addr, token=servers.vault_token)


@pytest.fixture
def transit_key(vault: hvac.Client) -> Iterator[TransitKeyFactory]:
    """Create Transit keys only this test uses; ``transit_key(key_type="ed25519")``."""
    created: list[str] = []

    def create(key_type: str = "aes256-gcm96", **options: Any) -> str:
        name = unique_name("test-")
        vault.secrets.transit.create_key(name=name, key_type=key_type, **options)
        created.append(name)
        return name

    try:
        yield create
    finally:
        for name in created:
            vault.secrets.transit.update_key_configuration(name=name, deletion_allowed=True)
            vault.secrets.transit.delete_key(name=name)


@pytest.fixture
def vault_keyring(vault: hvac.Client, transit_key: TransitKeyFactory, key_store_mount: str) -> Any:
    """A `PatientKeyring` on the session's OpenBao, with a KEK and key store of its own."""
    # Imported here: the security kernel is not needed by tests that never ask for this.
    from clinical_platform.security import KeyringConfig, PatientKeyring  # noqa: PLC0415
    from clinical_platform.security.vault_adapters import (  # noqa: PLC0415
        KvWrappedKeyStore,
        TransitKeyEncryption,
    )

    return PatientKeyring(
        TransitKeyEncryption(vault, transit_key()), KvWrappedKeyStore(vault, key_store_mount),
        KeyringConfig(),
    )  # fmt: skip


@pytest.fixture
def vault_cipher(vault_keyring: Any) -> Any:
    """An `EnvelopeCipher` over `vault_keyring` that creates missing data keys (as the patient
    service's does), so a test's patients need no registration first."""
    from clinical_platform.security import EnvelopeCipher  # noqa: PLC0415

    return EnvelopeCipher(vault_keyring, creates_keys=True)


@pytest.fixture
def key_store_mount(vault: hvac.Client) -> Iterator[str]:
    """A KV v2 mount only this test uses, configured like ``clinical-keys/``; removed after."""
    # Imported here: the security kernel is not needed by tests that never ask for this.
    from clinical_platform.security.vault_adapters import ensure_key_store  # noqa: PLC0415

    mount = unique_name("test-keys-")
    ensure_key_store(vault, mount)
    try:
        yield mount
    finally:
        vault.sys.disable_secrets_engine(path=mount)


@pytest.fixture
def violated_fields() -> Callable[[grpc.aio.AioRpcError], list[str]]:
    """Reads the field names out of an INVALID_ARGUMENT refusal."""
    return bad_request_fields
