"""The one place that builds Kafka clients, so every client connects the same way.

A `KafkaConnection` holds what every client needs to reach the brokers: the bootstrap servers and
the transport security (`KafkaSecurity`: SASL_SSL with SCRAM-SHA-512 and the CA to trust, by
default). The builders add the guarantees clinical events need and take per-use options on top.
Services build the connection from their settings; a connection built by hand from only the
bootstrap servers (tests, benchmarks, tools) reads the same KAFKA_* variables from the environment.

aiokafka binds a client to the running event loop, so build clients from async code. Building a
client does not connect; ``await client.start()`` does.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.producer import sender as aiokafka_sender
from pydantic import SecretStr

from clinical_platform.settings import SettingsError

# Right after a commit the transaction coordinator refuses the next AddPartitionsToTxn with
# CONCURRENT_TRANSACTIONS until it has written the commit markers (KAFKA-5477), which takes
# about one broker round trip. aiokafka then sleeps a fixed 20 ms (its sender's
# BACKOFF_OVERRIDE, whatever retry_backoff_ms says), so back-to-back transactions of one
# producer cost ~20 ms each instead of a few round trips. Retry after about one round trip.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002


SecurityProtocol = Literal["SASL_SSL", "SSL", "PLAINTEXT"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class _HasKafkaSettings(Protocol):
    @property
    def kafka_bootstrap_servers(self) -> str: ...
    @property
    def kafka_security_protocol(self) -> SecurityProtocol: ...
    @property
    def kafka_sasl_mechanism(self) -> SaslMechanism: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> SecretStr | None: ...
    @property
    def kafka_ssl_cafile(self) -> Path | None: ...


@dataclass(frozen=True)
class KafkaSecurity:
    """Transport security and credentials; SASL_SSL unless told otherwise (secure by default)."""

    protocol: SecurityProtocol = "SASL_SSL"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """The CA certificates to trust (PEM); None trusts the system's."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KafkaSecurity:
        """Read KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_CAFILE, as settings do."""
        protocol = environ.get("KAFKA_SECURITY_PROTOCOL") or "SASL_SSL"
        mechanism = environ.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512"
        if protocol not in get_args(SecurityProtocol):
            raise SettingsError(f"KAFKA_SECURITY_PROTOCOL: one of {get_args(SecurityProtocol)}")
        if mechanism not in get_args(SaslMechanism):
            raise SettingsError(f"KAFKA_SASL_MECHANISM: one of {get_args(SaslMechanism)}")
        password = environ.get("KAFKA_SASL_PASSWORD")
        ca_file = environ.get("KAFKA_SSL_CAFILE")
        return cls(
            protocol=protocol,  # type: ignore[arg-type]  # checked against the Literal above
            mechanism=mechanism,  # type: ignore[arg-type]
            username=environ.get("KAFKA_SASL_USERNAME") or None,
            password=SecretStr(password) if password else None,
            ca_file=Path(ca_file) if ca_file else None,
        )

    def client_options(self) -> dict[str, Any]:
        """aiokafka's options, or `SettingsError` naming each missing variable."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = _tls_context(self.ca_file)
        if self.protocol == "SASL_SSL":
            missing = [
                name
                for name, value in (
                    ("KAFKA_SASL_USERNAME", self.username),
                    ("KAFKA_SASL_PASSWORD", self.password),
                )
                if not value
            ]
            if missing:
                raise SettingsError(
                    "; ".join(f"{name}: required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"
                              for name in missing)
                )  # fmt: skip
            assert self.password is not None  # noqa: S101 - checked just above, for mypy
            options |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password.get_secret_value(),
            }
        return options


@functools.cache
def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    # One context per CA file for the whole process: contexts are reusable and thread-safe.
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as error:
        raise SettingsError(f"KAFKA_SSL_CAFILE: cannot load {ca_file}: {error}") from None


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach the brokers: the options every Kafka client of the platform shares."""

    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity.from_env)

    @classmethod
    def from_settings(cls, settings: _HasKafkaSettings) -> KafkaConnection:
        """The connection a service's settings describe; `SettingsError` if they fall short."""
        connection = cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            security=KafkaSecurity(
                protocol=settings.kafka_security_protocol,
                mechanism=settings.kafka_sasl_mechanism,
                username=settings.kafka_sasl_username,
                password=settings.kafka_sasl_password,
                ca_file=settings.kafka_ssl_cafile,
            ),
        )
        connection.client_options()  # fail at start, naming the variables, not at first use
        return connection

    def client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers} | self.security.client_options()


def build_producer(connection: KafkaConnection, **options: Any) -> AIOKafkaProducer:
    """An unstarted producer that waits for all in-sync replicas and never duplicates."""
    defaults: dict[str, Any] = {
        # acks=all + idempotence: a retried send must not duplicate or lose a clinical event.
        "acks": "all",
        "enable_idempotence": True,
    }
    if options.get("transactional_id") is not None:
        _shorten_concurrent_transactions_backoff()
    return AIOKafkaProducer(**(connection.client_options() | defaults | options))


def _shorten_concurrent_transactions_backoff() -> None:
    # A module constant read on every retry, so setting it covers every producer of the
    # process (tests/unit/eventlog/test_transactional_producer.py notices if aiokafka drops it).
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


def build_consumer(connection: KafkaConnection, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An unstarted consumer that commits explicitly and sees only committed events."""
    defaults: dict[str, Any] = {
        # Commit after the effect is written, so a crash re-delivers instead of skipping.
        "enable_auto_commit": False,
        # Events from aborted transactions never happened; nobody may act on them.
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    return AIOKafkaConsumer(*topics, **(connection.client_options() | defaults | options))


def build_admin(connection: KafkaConnection, **options: Any) -> AIOKafkaAdminClient:
    """An unstarted admin client (topic creation and inspection)."""
    return AIOKafkaAdminClient(**(connection.client_options() | options))
