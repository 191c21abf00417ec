"""Composition root of the notify service: the one place that builds clients and wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib.metadata import version

from clinical.notify.v1 import notify_pb2_grpc
from clinical_platform.background import supervise
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.consumers import consume_in_commit_order
from clinical_platform.consumers.commit_order import Handler
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import GrpcService
from clinical_platform.health import HealthCheck
from clinical_platform.lifecycle import running_service
from clinical_platform.projections.applier import Record, quarantine
from clinical_platform.projections.background import event_topic_specs
from clinical_platform.projections.runner import create_dead_letter_topics, dead_letter_producer
from clinical_platform.runtime import serve_grpc, service_runtime, token_verifier
from clinical_platform.security.forgetting import ForgottenPatients
from clinical_platform.tokens import TokenVerifier
from notify.adapters.delivery_documents import DeliveryDocuments
from notify.adapters.disclosures import AuditedDisclosures
from notify.adapters.egress import EgressPolicy
from notify.adapters.event_catalog import SUBSCRIPTION_EVENTS
from notify.adapters.fact_cache import FactCache
from notify.adapters.feed_documents import FeedDocuments
from notify.adapters.kept_events import (
    PATIENT_COLLECTIONS,
    EventIndexDocuments,
    KeptEventDocuments,
)
from notify.adapters.rendering import NotificationRenderer
from notify.adapters.secrets import TransitSecretBox
from notify.adapters.subscription_documents import SubscriptionDocuments
from notify.adapters.subscription_store import WriteThroughSubscriptions
from notify.adapters.wakeups import FreshEntries, InProcessWakeups
from notify.adapters.webhooks import WebhookSender
from notify.application import NotifyApp
from notify.domain.backoff import RetrySchedule
from notify.entrypoints.deliveries import DeliveryParts, WebhookDeliveries
from notify.entrypoints.grpc import NotifyServicer
from notify.entrypoints.matcher import Matcher, MatcherParts
from notify.grants import SubscriptionGrants
from notify.policy import Quotas
from notify.replay import NotificationReplay
from notify.settings import NotifySettings

SERVICE = "notify"
GRPC_SERVICE_NAME = "clinical.notify.v1.NotifyService"


@dataclass(frozen=True)
class RunningNotify:
    """What a running notify service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: NotifyApp
    store: EventStore
    matcher: Matcher
    health_checks: Sequence[HealthCheck] = ()


@asynccontextmanager
async def running_notify(
    settings: NotifySettings, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningNotify]:
    """Start the event store, the matcher and the webhook workers; stop them (in reverse)
    after the caller is done serving. ``verifier`` replaces the one built from the settings."""
    service = settings.event_log_name
    async with running_service(
        settings, service=SERVICE, database=settings.mongodb_database
    ) as parts:
        security, database = parts.security, parts.database
        secrets = TransitSecretBox(
            security.vault, settings.secret_key, settings.vault_transit_mount
        )
        await secrets.ensure_key()
        views, feed = SubscriptionDocuments(database), FeedDocuments(database)
        kept, index = KeptEventDocuments(database), EventIndexDocuments(database)
        progress = DeliveryDocuments(database)
        for collection in (views, feed, kept, index):
            await collection.setup()
        sender = WebhookSender(
            timeout_s=settings.webhook_timeout_s,
            policy=EgressPolicy.from_setting(settings.webhook_allowed_networks),
        )
        await sender.start()
        parts.on_stop(sender.stop)
        store = await parts.event_store(service=service)
        # Subscriptions are about no patient: their events pass the cipher in clear (the
        # webhook secrets in them are Transit ciphertext).
        repository = AggregateRepository(
            store, SUBSCRIPTION_EVENTS, source=f"//clinical/{service}", cipher=security.cipher,
            patient_of=lambda _: "",
        )  # fmt: skip
        subscriptions = WriteThroughSubscriptions(repository, views)
        wakeups, fresh = InProcessWakeups(), FreshEntries()
        renderer = NotificationRenderer(kept, index, security.cipher)
        lifetime = timedelta(seconds=settings.subscription_lifetime_s)
        quotas = Quotas(settings.subscription_quota, settings.patient_subscription_quota)
        app = NotifyApp(
            subscriptions, feed, progress, secrets=secrets, sender=sender, wakeups=wakeups,
            allow_http=settings.webhook_allow_http,
            secret_overlap=timedelta(seconds=settings.secret_overlap_s),
            lifetime=lifetime, quota=quotas.limit_for,
        )  # fmt: skip
        grants = SubscriptionGrants(subscriptions, wakeups, lifetime=lifetime)
        disclosures = AuditedDisclosures(parts.access_log)
        deliveries = WebhookDeliveries(
            DeliveryParts(
                views, feed, progress, renderer, secrets, sender, disclosures, wakeups, fresh
            ),
            schedule=_retry_schedule(settings), poll_interval_s=settings.poll_interval_s,
            workers=settings.webhook_workers,
        )  # fmt: skip
        parts.on_stop(deliveries.stop)
        facts = FactCache(index)
        topics = [
            settings.orders_events_topic,
            settings.results_events_topic,
            events_topic(service),
        ]
        kafka = KafkaConnection.from_settings(settings)
        dead_letters = dead_letter_producer(kafka)
        await create_dead_letter_topics(
            topics, kafka, replication_factor=settings.kafka_replication_factor
        )
        await dead_letters.start()
        parts.on_stop(dead_letters.stop)

        async def set_aside(record: Record, poison: BaseException) -> None:
            await quarantine(record, poison, dead_letters)

        matcher = Matcher(
            MatcherParts(
                subscriptions, views, feed, kept, facts, security.cipher, wakeups, fresh, set_aside
            ),
            notify_topic=events_topic(service),
            owns=lambda subscription_id: store.partition_of(subscription_id)
            in store.owned_partitions,
            on_subscription=deliveries.track, on_deleted=deliveries.forget,
        )  # fmt: skip
        group = f"{service}.matcher.r{settings.replica_ordinal}"

        def consume(handle: Handler) -> Awaitable[None]:
            return consume_in_commit_order(
                kafka, topics, group=group, handle=handle,
                topic_specs=event_topic_specs(topics, settings),
            )  # fmt: skip

        parts.run_task(
            "matcher", partial(supervise, "notify matcher", partial(matcher.run, consume))
        )
        # Crypto-shredding: the kept envelopes and index facts of a forgotten patient become
        # markers, so their notifications go out withheld from then on.
        forgotten = ForgottenPatients(
            name=f"{service}.forgotten-patients.r{settings.replica_ordinal}",
            patient_topic=settings.patient_events_topic,
            marked_collections=PATIENT_COLLECTIONS,
            on_forgotten=[security.keyring.evict, facts.forget_patient],
        )
        parts.run_projections([forgotten])
        replay = NotificationReplay(feed, renderer, wakeups)
        servicer = NotifyServicer(
            app, grants, replay, verifier or token_verifier(settings), disclosures,
            heartbeat_s=settings.heartbeat_s, poll_interval_s=settings.poll_interval_s,
        )  # fmt: skip
        register = partial(notify_pb2_grpc.add_NotifyServiceServicer_to_server, servicer)
        yield RunningNotify(
            [GrpcService(GRPC_SERVICE_NAME, register)], app, store, matcher, parts.health_checks
        )


def _retry_schedule(settings: NotifySettings) -> RetrySchedule:
    return RetrySchedule(
        first=timedelta(seconds=settings.webhook_retry_first_s),
        maximum=timedelta(seconds=settings.webhook_retry_max_s),
        horizon=timedelta(seconds=settings.webhook_retry_horizon_s),
    )


async def serve(settings: NotifySettings) -> None:
    """Run the notify service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-notify")),
        running_notify(settings) as notify,
    ):
        await serve_grpc(settings, services=notify.services, health_checks=notify.health_checks)
