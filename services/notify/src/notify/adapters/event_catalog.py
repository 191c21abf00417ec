"""The Subscription aggregate's events and the protobuf payloads that carry them on the log."""

from __future__ import annotations

from clinical.events.v1 import notify_events_pb2 as events
from clinical_platform.eventlog.codec import EventCatalog
from notify.domain.subscription import Subscription

SUBSCRIPTION_EVENTS: EventCatalog[Subscription] = EventCatalog(
    Subscription,
    {
        "SubscriptionCreated": events.SubscriptionCreated,
        "WebhookSecretRotated": events.WebhookSecretRotated,
        "SubscriptionDeleted": events.SubscriptionDeleted,
        "SubscriptionRenewed": events.SubscriptionRenewed,
        "SubscriptionRevoked": events.SubscriptionRevoked,
    },
)
