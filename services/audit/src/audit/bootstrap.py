"""Composition root of the audit service: the one place that builds clients and wires them.

Nothing here waits for Kafka or MongoDB: the projections and the access-record publisher run as
background tasks that keep retrying, so the service starts SERVING (and answers from whatever
the read model holds) while the servers come up; health turns NOT_SERVING once a projection
keeps failing or Vault (which verifies checkpoints) is sealed or unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from audit.adapters.partition_verifier import KafkaPartitionVerifier
from audit.adapters.projections import AccessLog, ChangeHistory
from audit.adapters.trail_store import MongoAuditTrail
from audit.application import AuditApp
from audit.entrypoints.grpc import AuditServicer
from audit.settings import AuditSettings
from clinical.audit.v1 import audit_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.background import CrashLoop, CrashLoops, stop_tasks, supervise
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.clients.vault import build_vault_client
from clinical_platform.grpc_server import GrpcService
from clinical_platform.health import HealthCheck
from clinical_platform.projections import ProjectionRunner
from clinical_platform.projections.runner import AnyProjection
from clinical_platform.runtime import serve_grpc, service_runtime, token_verifier
from clinical_platform.security.readiness import vault_health_check
from clinical_platform.security.wiring import build_signer
from clinical_platform.tokens import TokenVerifier

SERVICE = "audit"
GRPC_SERVICE_NAME = "clinical.audit.v1.AuditService"


@dataclass(frozen=True)
class RunningAudit:
    """What a running audit service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: AuditApp
    access_log: AccessAuditLog
    health_checks: Sequence[HealthCheck] = ()


@asynccontextmanager
async def running_audit(
    settings: AuditSettings, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningAudit]:
    """Start the access log and the projections; stop them (in reverse) after the caller is
    done serving.

    ``verifier`` replaces the one built from the JWT settings (tests pass their own).
    """
    async with AsyncExitStack() as stack:
        mongo = build_mongo_client(settings)
        stack.push_async_callback(mongo.close)
        database = mongo[settings.mongodb_database]
        vault = build_vault_client(settings)
        signer = build_signer(vault, settings)
        access_log = AccessAuditLog(AccessAuditConfig.from_settings(settings, service=SERVICE))
        await access_log.start()
        stack.push_async_callback(access_log.stop)
        name = settings.read_model_name
        history = ChangeHistory(f"{name}.history")
        accesses = AccessLog(f"{name}.access", settings.access_audit_topic)
        crash_loops = CrashLoops(failures=settings.projection_crash_loop_failures)
        runners = [
            _run(history, settings, database, crash_loops.watch(history.name),
                 topic_pattern=settings.event_topic_pattern),
            _run(accesses, settings, database, crash_loops.watch(accesses.name)),
        ]  # fmt: skip
        stack.push_async_callback(stop_tasks, runners)
        partition_verifier = KafkaPartitionVerifier(
            KafkaConnection.from_settings(settings), settings.checkpoints_topic, signer,
            concurrency=settings.concurrent_verifications,
        )  # fmt: skip
        app = AuditApp(
            MongoAuditTrail(database), partition_verifier,
            event_topic_pattern=settings.event_topic_pattern,
        )  # fmt: skip
        servicer = AuditServicer(app, verifier or token_verifier(settings), access_log)
        register = partial(audit_pb2_grpc.add_AuditServiceServicer_to_server, servicer)
        # Verifying checkpoints needs Vault; the read models need their projections.
        checks = [
            vault_health_check(vault, settings),
            HealthCheck("projections", crash_loops.failing),
        ]
        yield RunningAudit([GrpcService(GRPC_SERVICE_NAME, register)], app, access_log, checks)


def _run(
    projection: AnyProjection,
    settings: AuditSettings,
    database: AsyncDatabase[Any],
    crash_loop: CrashLoop,
    *,
    topic_pattern: str | None = None,
) -> asyncio.Task[None]:
    runner = ProjectionRunner(
        projection,
        kafka=KafkaConnection.from_settings(settings),
        database=database,
        replication_factor=settings.kafka_replication_factor,
        topic_pattern=topic_pattern,
    )
    # Supervised: a projection that stopped would leave a silent gap in the audit trail.
    return asyncio.create_task(
        supervise(f"projection {projection.name}", runner.run, crash_loop=crash_loop),
        name=projection.name,
    )


async def serve(settings: AuditSettings) -> None:
    """Run the audit service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-audit")),
        running_audit(settings) as audit,
    ):
        await serve_grpc(settings, services=audit.services, health_checks=audit.health_checks)
