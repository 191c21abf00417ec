"""Configuration of the notify service; its own variables start with NOTIFY_."""

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.settings import Port, RecordServiceSettings

_HOUR_S = 3600.0


class NotifySettings(RecordServiceSettings):
    """Shared connections plus NOTIFY_GRPC_PORT, NOTIFY_WEBHOOK_RETRY_HORIZON_S, ..."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    grpc_port: Port = 18054
    # Decides the event topic (clinical.<name>.events.v1) and prefixes the consumer groups.
    # Only an isolated copy of the service (a test) has a reason to change it.
    event_log_name: str = "notify"
    # Subscriptions, their numbered notifications and webhook delivery state.
    mongodb_database: str = "notify"
    # What is matched: the orders and results topics.
    orders_events_topic: str = events_topic("orders")
    results_events_topic: str = events_topic("results")
    # The Transit key that encrypts webhook signing secrets on the log (created when missing).
    secret_key: str = "clinical-notify"  # noqa: S105 - a key's name
    # How long a rotated-out webhook secret keeps signing next to the new one.
    secret_overlap_s: Annotated[float, Field(ge=0)] = 24 * _HOUR_S
    # Idle streams get a heartbeat this often.
    heartbeat_s: Annotated[float, Field(gt=0)] = 15.0
    # Webhooks: http:// endpoints are refused unless allowed (local runs and tests only).
    webhook_allow_http: bool = False
    # Webhooks reach public addresses only (adapters/egress.py); these networks are allowed
    # too, comma-separated CIDRs (local runs and tests: 127.0.0.0/8). Never a cluster's range.
    webhook_allow_networks: str = ""
    webhook_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # Retries: exponential from the first delay, capped, with jitter, for at most the horizon;
    # then the notification is dead-lettered and the webhook turned off.
    webhook_retry_first_s: Annotated[float, Field(gt=0)] = 5.0
    webhook_retry_max_s: Annotated[float, Field(gt=0)] = 2 * _HOUR_S
    webhook_retry_horizon_s: Annotated[float, Field(gt=0)] = 72 * _HOUR_S
    # How often a replica looks for changes made through another replica (Resend, deletes);
    # this replica's own changes and new notifications wake workers and streams at once.
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    # Subscription grants: each lasts this long from creation or renewal (30 days).
    subscription_lifetime_s: Annotated[float, Field(gt=0)] = 30 * 24 * _HOUR_S
    # Active subscriptions one owner may hold: staff, and patient principals.
    subscription_quota: Annotated[int, Field(ge=1)] = 20
    patient_subscription_quota: Annotated[int, Field(ge=1)] = 5
    # Webhook deliveries: a pool of this many workers takes turns at every subscription.
    webhook_workers: Annotated[int, Field(ge=1, le=1024)] = 32

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for network in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(network, strict=False)  # ValueError: "does not appear to be..."
        return value

    @property
    def webhook_allowed_networks(self) -> list[str]:
        return [part.strip() for part in self.webhook_allow_networks.split(",") if part.strip()]

    def production_refusals(self) -> list[str]:
        """Production mode (clinical_platform.production): webhooks go out over https only."""
        if not self.webhook_allow_http:
            return []
        return ["NOTIFY_WEBHOOK_ALLOW_HTTP: webhooks would carry PHI over plain http"]
