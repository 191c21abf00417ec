"""Typed, fail-fast configuration shared by every service.

Connection variables (Kafka, MongoDB, Vault, OpenTelemetry, logging) are unprefixed because every
service in an environment talks to the same servers. Variables that belong to one service carry
that service's prefix, e.g. ``ORDERS_GRPC_PORT``. A service declares only its prefix, its default
port and any extra fields::

    class OrdersSettings(BaseServiceSettings):
        model_config = SettingsConfigDict(env_prefix="ORDERS_")
        grpc_port: Port = 18052

Tests build settings with keyword arguments: service fields by name (``grpc_port=0``), shared
connections by their variable (``VAULT_TOKEN="..."``), exactly as the environment would name them.
"""

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clinical_platform.audiences import DEFAULT_MAX_LIFETIME_S, service_audience

Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP port; 0 asks the OS for a free one."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
VaultAuthMethod = Literal["token", "approle", "kubernetes"]

_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def _shared(variable: str, default: Any) -> Any:
    # A validation alias opts a field out of the service's env_prefix, so the variable is shared.
    return Field(default, validation_alias=variable)


class SettingsError(Exception):
    """Configuration is missing or malformed; the message names each offending variable."""


class BaseServiceSettings(BaseSettings):
    """Settings every service reads: shared connections plus its own gRPC endpoint."""

    model_config = SettingsConfigDict(frozen=True)

    kafka_bootstrap_servers: str = _shared("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    # Kafka transport security (clients/kafka.py): SASL_SSL with SCRAM unless told otherwise.
    # `make -s infra-env` prints the local broker's values.
    kafka_security_protocol: Literal["SASL_SSL", "SSL", "PLAINTEXT"] = _shared(
        "KAFKA_SECURITY_PROTOCOL", "SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = _shared(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"
    )
    kafka_sasl_username: str | None = _shared("KAFKA_SASL_USERNAME", None)
    kafka_sasl_password: SecretStr | None = _shared("KAFKA_SASL_PASSWORD", None)
    kafka_ssl_cafile: Path | None = _shared("KAFKA_SSL_CAFILE", None)
    mongodb_url: str = _shared("MONGODB_URL", "mongodb://127.0.0.1:37017/")
    vault_addr: str = _shared("VAULT_ADDR", "http://127.0.0.1:18200")
    vault_auth_method: VaultAuthMethod = _shared("VAULT_AUTH_METHOD", "token")
    vault_token: SecretStr | None = _shared("VAULT_TOKEN", None)
    vault_role_id: str | None = _shared("VAULT_ROLE_ID", None)
    vault_secret_id: SecretStr | None = _shared("VAULT_SECRET_ID", None)
    vault_k8s_role: str | None = _shared("VAULT_K8S_ROLE", None)
    vault_k8s_jwt_path: Path = _shared("VAULT_K8S_JWT_PATH", _SERVICE_ACCOUNT_TOKEN)
    vault_timeout_seconds: Annotated[int, Field(ge=1)] = _shared("VAULT_TIMEOUT_SECONDS", 5)
    # PHI encryption and audit signing (docs/security.md): the Transit mount and keys, and the
    # KV v2 mount holding the wrapped per-patient data keys.
    vault_transit_mount: str = _shared("VAULT_TRANSIT_MOUNT", "transit")
    vault_phi_key: str = _shared("VAULT_PHI_KEY", "clinical-phi")
    vault_key_store_mount: str = _shared("VAULT_KEY_STORE_MOUNT", "clinical-keys")
    vault_audit_signing_key: str = _shared("VAULT_AUDIT_SIGNING_KEY", "clinical-audit")
    # Unwrapped data keys kept in memory: at most this many, each for at most this long. The
    # TTL also bounds how long another replica can still read a patient who was just forgotten.
    data_key_cache_size: Annotated[int, Field(ge=1)] = _shared("DATA_KEY_CACHE_SIZE", 10_000)
    data_key_cache_ttl_seconds: Annotated[float, Field(gt=0)] = _shared(
        "DATA_KEY_CACHE_TTL_SECONDS", 300.0
    )
    # How often Vault's seal status is checked; a sealed or unreachable Vault empties the cache.
    vault_health_interval_seconds: Annotated[float, Field(gt=0)] = _shared(
        "VAULT_HEALTH_INTERVAL_SECONDS", 5.0
    )
    audit_checkpoint_every_events: Annotated[int, Field(ge=1)] = _shared(
        "AUDIT_CHECKPOINT_EVERY_EVENTS", 256
    )
    audit_checkpoint_every_seconds: Annotated[float, Field(gt=0)] = _shared(
        "AUDIT_CHECKPOINT_EVERY_SECONDS", 10.0
    )
    # Read-access audit (clinical_platform.access): every service that serves or refuses reads
    # of patient data publishes access records to this topic, created with this many partitions.
    access_audit_topic: str = _shared("ACCESS_AUDIT_TOPIC", "clinical.audit.access.v1")
    access_audit_partitions: Annotated[int, Field(ge=1)] = _shared("ACCESS_AUDIT_PARTITIONS", 6)
    otel_exporter_otlp_endpoint: str | None = _shared("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    # otlp (production), zipkin (the local stack, to OTEL_EXPORTER_ZIPKIN_ENDPOINT) or none;
    # unset: otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none.
    otel_traces_exporter: Literal["otlp", "zipkin", "none"] | None = _shared(
        "OTEL_TRACES_EXPORTER", None
    )
    log_level: LogLevel = _shared("LOG_LEVEL", "INFO")
    # Ed25519 public keys (PEM, several while keys rotate) that sign the internal JWTs. Without
    # them every RPC but health is refused: secure by default.
    jwt_public_keys: str = _shared("JWT_PUBLIC_KEYS", "")
    jwt_issuer: str = _shared("JWT_ISSUER", "clinical-platform")
    # The token service's published keys (the gateway's /.well-known/jwks.json), trusted beside
    # JWT_PUBLIC_KEYS: a key it rotates in is trusted at its first token, one it retires within
    # five minutes, without restarting any service.
    jwt_jwks_url: str = _shared("JWT_JWKS_URL", "")
    # The longest a token may live (exp - iat); longer ones are refused however they are signed.
    jwt_max_lifetime_seconds: Annotated[int, Field(ge=1)] = _shared(
        "JWT_MAX_LIFETIME_SECONDS", DEFAULT_MAX_LIFETIME_S
    )
    kafka_replication_factor: int = _shared("KAFKA_REPLICATION_FACTOR", 1)
    kafka_min_insync_replicas: int = _shared("KAFKA_MIN_INSYNC_REPLICAS", 1)

    # The deployment's name (development, staging, production, ...). Exactly "production"
    # refuses to start with any insecure setting (clinical_platform.production).
    environment: str = _shared("ENVIRONMENT", "development")

    # The audience this service's tokens must name (<PREFIX>JWT_AUDIENCE); empty: its own,
    # clinical-<service> from the prefix (`token_audience`), which the gateway mints for it.
    jwt_audience: str = ""
    # Loopback unless told otherwise: a misconfigured pod must not expose clinical data.
    grpc_host: str = "127.0.0.1"
    grpc_port: Port
    grpc_reflection: bool = False
    # TLS for gRPC (PEM files, clinical_platform.grpc_tls): this service's certificate and key,
    # and the CA of the platform's services; with the CA, callers must present a certificate it
    # signed (mutual TLS) and this service's own calls present this one. Unset: plaintext,
    # which production mode refuses.
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_ca_file: Path | None = None
    grpc_grace_seconds: Annotated[float, Field(ge=0)] = 10.0
    # Backpressure (docs/services.md#backpressure-and-health): calls in progress at most
    # (streams included; beyond, RESOURCE_EXHAUSTED at once), and how often health re-checks
    # Vault, the event writers and the projections.
    grpc_max_concurrent_rpcs: Annotated[int, Field(ge=1)] = 1000
    health_check_interval_seconds: Annotated[float, Field(gt=0)] = 2.0
    # The Prometheus /metrics endpoint (docs/observability.md); not served unless a port is set.
    metrics_host: str = "127.0.0.1"
    metrics_port: Port | None = None

    # The event log of services that record events (see docs/architecture.md): this replica's
    # ordinal among `replica_count`, the address pattern of its peers, and where the local
    # state store lives (a rebuildable cache of the owned partitions).
    replica_ordinal: Annotated[int, Field(ge=0)] = 0
    replica_count: Annotated[int, Field(ge=1)] = 1
    replica_address_template: str = "127.0.0.1:{port}"
    state_dir: Path = Path("state")
    event_partitions: Annotated[int, Field(ge=1)] = 6
    # Appends waiting for one partition's writer at most; more are refused (RESOURCE_EXHAUSTED).
    event_writer_max_queued_appends: Annotated[int, Field(ge=1)] = 10_000
    # Quick failures in a row after which a projection counts as crash-looping (NOT_SERVING).
    projection_crash_loop_failures: Annotated[int, Field(ge=1)] = 3

    @field_validator("log_level", mode="before")
    @classmethod
    def _accept_lower_case_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tls_files_come_as_a_pair(self) -> Self:
        cert, key = self.grpc_tls_cert_file, self.grpc_tls_key_file
        if (cert is None) != (key is None) or (cert is None and self.grpc_tls_ca_file):
            pair = [self.variable_for(f) for f in ("grpc_tls_cert_file", "grpc_tls_key_file")]
            msg = f"{' and '.join(pair)}: set both (a CA alone serves no TLS)"
            raise ValueError(msg)
        return self

    def production_refusals(self) -> list[str]:
        """A service's own reasons to refuse production mode, one line each ("VAR: why").

        The shared checks are in `clinical_platform.production`; a service overrides this for
        settings only it has.
        """
        return []

    @property
    def token_audience(self) -> str:
        """The `aud` this service's tokens must name, e.g. ``clinical-orders``."""
        prefix = str(self.model_config.get("env_prefix") or "")
        return self.jwt_audience or service_audience(prefix.rstrip("_").lower())

    @classmethod
    def variable_for(cls, field_or_alias: str) -> str:
        """Return the environment variable that feeds a field, given its name or alias."""
        field = cls.model_fields.get(field_or_alias)
        if field is None:  # not a field name, so already a shared variable's alias
            return field_or_alias.upper()
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}{field_or_alias}".upper()


class RecordServiceSettings(BaseServiceSettings):
    """Settings of a service that keeps clinical records: its read models and how reads wait.

    A service sets its database name; the rest it inherits::

        class OrdersSettings(RecordServiceSettings):
            model_config = SettingsConfigDict(env_prefix="ORDERS_")
            grpc_port: Port = 18052
            mongodb_database: str = "orders"
    """

    # The read models' database.
    mongodb_database: str
    # Where PatientForgotten comes from (the patient service's event topic).
    patient_events_topic: str = "clinical.patient.events.v1"
    # The longest a read waits for "at least version N" when the call has no longer deadline.
    read_wait_max_s: Annotated[float, Field(ge=0)] = 10.0


SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


def load_settings(settings_cls: type[SettingsT], **values: Any) -> SettingsT:
    """Read settings from the environment (keyword values win) or raise `SettingsError`.

    The error message is one line naming every bad variable, e.g.
    ``ORDERS_GRPC_PORT: Input should be a valid integer, unable to parse string as an integer``.
    """
    try:
        return settings_cls(**values)
    except ValidationError as invalid:
        problems = [
            f"{_variable_at(settings_cls, error['loc'])}: {error['msg']}"
            for error in invalid.errors(include_url=False, include_input=False)
        ]
        raise SettingsError("; ".join(problems)) from None


def load_settings_or_exit(settings_cls: type[SettingsT]) -> SettingsT:
    """Load settings for a process entrypoint; on error print one line to stderr and exit 2."""
    try:
        return load_settings(settings_cls)
    except SettingsError as error:
        exit_with_usage_error(f"invalid settings: {error}")


def _variable_at(settings_cls: type[BaseServiceSettings], loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "settings"
    return settings_cls.variable_for(str(loc[0]))


def exit_with_usage_error(message: str) -> NoReturn:
    # Exit status 2 is the conventional "bad usage/configuration": orchestrators should not retry.
    print(message, file=sys.stderr)
    raise SystemExit(2)
