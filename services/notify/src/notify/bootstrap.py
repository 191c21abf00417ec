"""Composition root of the notify service: the one place that builds clients and wires them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib.metadata import version

from clinical.notify.v1 import notify_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.background import stop_tasks, supervise
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import GrpcService
from clinical_platform.projections.background import start_projections, stop_projections
from clinical_platform.runtime import (
    event_store_config,
    serve_grpc,
    service_runtime,
    token_verifier,
)
from clinical_platform.security.forgetting import ForgottenPatients
from clinical_platform.security.wiring import SecurityKernel, checkpoint_runners, running_security
from clinical_platform.tokens import TokenVerifier
from notify.adapters.disclosures import Disclosures
from notify.adapters.documents import PATIENT_COLLECTIONS, NotifyDocuments
from notify.adapters.event_catalog import SUBSCRIPTION_EVENTS
from notify.adapters.rendering import NotificationRenderer
from notify.adapters.secrets import TransitSecretBox
from notify.adapters.webhooks import WebhookSender
from notify.application import NotifyApp, Wakeups
from notify.domain.backoff import RetrySchedule
from notify.entrypoints.deliveries import WebhookDeliveries
from notify.entrypoints.grpc import NotifyServicer
from notify.entrypoints.matcher import Matcher
from notify.settings import NotifySettings

SERVICE = "notify"
GRPC_SERVICE_NAME = "clinical.notify.v1.NotifyService"


@dataclass(frozen=True)
class RunningNotify:
    """What a running notify service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: NotifyApp
    store: EventStore
    documents: NotifyDocuments
    matcher: Matcher


@asynccontextmanager
async def running_notify(
    settings: NotifySettings, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningNotify]:
    """Start the event store, the matcher and the webhook workers; stop them (in reverse)
    after the caller is done serving. ``verifier`` replaces the one built from the settings."""
    async with (
        running_security(settings) as security,
        _running_notify(settings, security, verifier) as notify,
    ):
        yield notify


@asynccontextmanager
async def _running_notify(
    settings: NotifySettings, security: SecurityKernel, verifier: TokenVerifier | None
) -> AsyncIterator[RunningNotify]:
    service = settings.event_log_name
    secrets = TransitSecretBox(security.vault, settings.secret_key, settings.vault_transit_mount)
    await secrets.ensure_key()
    store = EventStore(
        event_store_config(settings, service=service),
        attester_factory=checkpoint_runners(security.signer, settings),
    )
    mongo = build_mongo_client(settings)
    documents = NotifyDocuments(mongo[settings.mongodb_database])
    sender = WebhookSender(timeout_s=settings.webhook_timeout_s)
    access_log = AccessAuditLog(AccessAuditConfig.from_settings(settings, service=SERVICE))
    await access_log.start()
    try:
        await documents.setup()
        await sender.start()
        await store.start()
    except BaseException:
        await sender.stop()
        await access_log.stop()
        await mongo.close()
        raise
    disclosures = Disclosures(access_log)
    # Subscriptions are about no patient: their events pass the cipher in clear (the webhook
    # secrets in them are Transit ciphertext).
    subscriptions = AggregateRepository(
        store, SUBSCRIPTION_EVENTS, source=f"//clinical/{service}", cipher=security.cipher,
        patient_of=lambda _: "",
    )  # fmt: skip
    wakeups = Wakeups()
    app = NotifyApp(
        subscriptions, documents, renderer=NotificationRenderer(documents, security.cipher),
        secrets=secrets, sender=sender, wakeups=wakeups, allow_http=settings.webhook_allow_http,
        secret_overlap=timedelta(seconds=settings.secret_overlap_s),
    )  # fmt: skip
    schedule = RetrySchedule(
        first=timedelta(seconds=settings.webhook_retry_first_s),
        maximum=timedelta(seconds=settings.webhook_retry_max_s),
        horizon=timedelta(seconds=settings.webhook_retry_horizon_s),
    )
    deliveries = WebhookDeliveries(
        app, documents, secrets=secrets, sender=sender, wakeups=wakeups, schedule=schedule,
        disclosures=disclosures, poll_interval_s=settings.poll_interval_s,
    )  # fmt: skip
    matcher = Matcher(
        group=f"{service}.matcher.r{settings.replica_ordinal}",
        bootstrap_servers=settings.kafka_bootstrap_servers,
        clinical_topics=[settings.orders_events_topic, settings.results_events_topic],
        notify_topic=events_topic(service), documents=documents, subscriptions=subscriptions,
        cipher=security.cipher,
        owns=lambda subscription_id: store.partition_of(subscription_id) in store.owned_partitions,
        wakeups=wakeups, on_subscription=deliveries.track, on_deleted=deliveries.forget,
        grace_s=settings.ordering_grace_s,
    )  # fmt: skip
    matching = asyncio.create_task(supervise("notify matcher", matcher.run), name="matcher")
    # Crypto-shredding: the kept envelopes and index facts of a forgotten patient become
    # markers, so their notifications go out withheld from then on.
    forgotten = ForgottenPatients(
        name=f"{service}.forgotten-patients.r{settings.replica_ordinal}",
        patient_topic=settings.patient_events_topic,
        marked_collections=PATIENT_COLLECTIONS,
        on_forgotten=[security.keyring.evict, matcher.forget_patient],
    )
    runners = start_projections([forgotten], settings, documents.database, security.cipher)
    servicer = NotifyServicer(
        app, documents, verifier or token_verifier(settings), disclosures,
        heartbeat_s=settings.heartbeat_s, poll_interval_s=settings.poll_interval_s,
    )  # fmt: skip
    register = partial(notify_pb2_grpc.add_NotifyServiceServicer_to_server, servicer)
    try:
        yield RunningNotify(
            [GrpcService(GRPC_SERVICE_NAME, register)], app, store, documents, matcher
        )
    finally:
        await stop_projections(runners)
        await stop_tasks([matching])
        await deliveries.stop()
        await store.stop()
        await sender.stop()
        await access_log.stop()
        await mongo.close()


async def serve(settings: NotifySettings) -> None:
    """Run the notify service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-notify")),
        running_notify(settings) as notify,
    ):
        await serve_grpc(settings, services=notify.services)
