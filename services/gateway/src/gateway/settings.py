"""Configuration of the gateway service; its own variables start with GATEWAY_."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from clinical_platform.audiences import service_audience
from clinical_platform.settings import BaseServiceSettings, Port
from gateway.domain.origin import trusted_networks


class GatewaySettings(BaseServiceSettings):
    """Shared connections plus GATEWAY_GRPC_PORT, GATEWAY_HTTP_PORT, GATEWAY_OIDC_ISSUER, ..."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    grpc_port: Port = 18050
    http_host: str = "127.0.0.1"
    http_port: Port = 18080
    # The external identity provider (the local Keycloak's realm by default).
    oidc_issuer: str = "http://127.0.0.1:18180/realms/clinical"
    oidc_audience: str = "clinical-gateway"
    oidc_algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
    # An unknown `kid` refreshes the provider's keys at most this often.
    jwks_min_refresh_seconds: float = Field(30.0, ge=0)
    token_leeway_seconds: int = Field(30, ge=0, le=300)
    # Verified tokens remembered until they expire (0: verify every request).
    token_cache_size: int = Field(10_000, ge=0)
    # acr values the platform counts as multi-factor (amr second factors always count).
    mfa_acr_values: tuple[str, ...] = ("2", "mfa", "otp")
    # Internal tokens: Ed25519 private keys (PEM, first signs); made on first start if absent.
    signing_keys_file: Path = Path(".infra/gateway/signing-keys.pem")
    internal_issuer: str = "clinical-platform"
    internal_token_ttl_seconds: int = Field(120, ge=10, le=900)
    # Downstream services: addresses and the audience each one accepts.
    patient_address: str = "127.0.0.1:18051"
    orders_address: str = "127.0.0.1:18052"
    results_address: str = "127.0.0.1:18053"
    audit_address: str = "127.0.0.1:18055"
    notify_address: str = "127.0.0.1:18054"
    patient_audience: str = service_audience("patient")
    orders_audience: str = service_audience("orders")
    results_audience: str = service_audience("results")
    audit_audience: str = service_audience("audit")
    notify_audience: str = service_audience("notify")
    # Rate limits (the `limits` notation), per client and per user; storage memory or Redis.
    rate_limit: str = "100/minute"
    rate_limit_storage: str = "async+memory://"
    # Refusals also go to the access trail (ACCESS_AUDIT_TOPIC, through an outbox in
    # GATEWAY_STATE_DIR): needs Kafka. Without it they are log lines only.
    access_trail: bool = True
    # Beside the signing keys, in the git-ignored .infra, when nothing else is said.
    state_dir: Path = Path(".infra/gateway/state")
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or CIDR networks);
    # none by default: the client is the TCP peer, and a header anyone can write counts for nothing.
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ("http://127.0.0.1:18057",)
    # The audit console (/console/): the public client it logs in with (authorization code +
    # PKCE), the gateway's URL as the browser sees it (the redirect URI is under it), the key
    # that signs its session cookie (random per process when unset), the topics it verifies.
    console_client_id: str = "companion-app"
    console_public_url: str = "http://127.0.0.1:18080"
    console_session_key: SecretStr | None = None
    console_topics: tuple[str, ...] = (
        "clinical.patient.events.v1",
        "clinical.orders.events.v1",
        "clinical.results.events.v1",
    )
    # Bulk Data $export (docs/fhir-bulk-export.md): jobs and their NDJSON files in this MongoDB
    # database (MONGODB_URL), shared by every replica; kept this long after the kick-off. A
    # running job's lease lasts export_lease_seconds: a replica that stops renewing it (it died)
    # loses the job, and the replica answering the next status poll runs it again.
    export_enabled: bool = True
    export_database: str = "gateway"
    export_retention_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    export_lease_seconds: int = Field(60, ge=5, le=3600)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        trusted_networks(proxies)  # fails start-up on one that is neither address nor network
        return proxies

    def addresses(self) -> dict[str, str]:
        return {"patient": self.patient_address, "orders": self.orders_address,
                "results": self.results_address, "audit": self.audit_address,
                "notify": self.notify_address}  # fmt: skip

    def audiences(self) -> dict[str, str]:
        return {"patient": self.patient_audience, "orders": self.orders_audience,
                "results": self.results_audience, "audit": self.audit_audience,
                "notify": self.notify_audience}  # fmt: skip

    def production_refusals(self) -> list[str]:
        """Production mode (clinical_platform.production): keys from the provider over https."""
        if urlsplit(self.oidc_issuer).scheme == "https":
            return []
        return ["GATEWAY_OIDC_ISSUER: not https; its signing keys could be swapped on the way"]
