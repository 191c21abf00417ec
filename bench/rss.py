"""Each service as a real process (``python -m <service>``, as the process tests start them):
its resident memory once it serves and has been idle a while."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.service_process import ServiceProcess
from clinical_testing.tokens import TokenMint
from pymongo import AsyncMongoClient

from bench.topics import delete_topics
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import events_topic

SERVICES = ("gateway", "patient", "orders", "results", "notify", "audit")
_SERVING_WITHIN_S = 120.0


def _settings(service: str, run: str, state: Path) -> dict[str, str]:
    """Topics, database and state of this run's own: nothing shared with anyone else."""
    prefix = service.upper()
    own = {
        f"{prefix}_STATE_DIR": str(state / service),
        f"{prefix}_MONGODB_DATABASE": f"bench_{run}_rss_{service}",
    }
    logs = {name: f"bench-rss-{name}-{run}" for name in ("patient", "orders", "results")}
    per_service = {
        "gateway": {},
        "patient": {"PATIENT_EVENT_LOG_NAME": logs["patient"]},
        "orders": {
            "ORDERS_EVENT_LOG_NAME": logs["orders"],
            "ORDERS_RESULTS_EVENTS_TOPIC": events_topic(logs["results"]),
            "ORDERS_PATIENT_EVENTS_TOPIC": events_topic(logs["patient"]),
        },
        "results": {
            "RESULTS_EVENT_LOG_NAME": logs["results"],
            "RESULTS_ORDERS_EVENTS_TOPIC": events_topic(logs["orders"]),
            "RESULTS_PATIENT_EVENTS_TOPIC": events_topic(logs["patient"]),
        },
        "notify": {
            "NOTIFY_EVENT_LOG_NAME": f"bench-rss-notify-{run}",
            "NOTIFY_ORDERS_EVENTS_TOPIC": events_topic(logs["orders"]),
            "NOTIFY_RESULTS_EVENTS_TOPIC": events_topic(logs["results"]),
        },
        "audit": {
            "AUDIT_READ_MODEL_NAME": f"bench-rss-audit-{run}",
            "AUDIT_EVENT_TOPIC_PATTERN": rf"^clinical\.bench-rss-[a-z]+-{run}\.events\.v1$",
            "AUDIT_CHECKPOINTS_TOPIC": f"bench.rss.{run}.checkpoints",
        },
    }
    return own | per_service[service]


async def measure_idle_rss(servers: ServerEndpoints, *, idle_s: float) -> dict[str, float]:
    """MiB resident per service, read ``idle_s`` after all of them report SERVING."""
    run = uuid.uuid4().hex[:10]
    token_mint = TokenMint()
    shared = servers.as_env() | {
        "JWT_PUBLIC_KEYS": token_mint.public_pem,
        "ACCESS_AUDIT_TOPIC": f"bench.rss.{run}.access",
        "ACCESS_AUDIT_PARTITIONS": "1",
        "LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as folder, ExitStack() as stack:
        state = Path(folder)
        processes = {
            service: stack.enter_context(
                ServiceProcess.on_free_port(
                    service, port_variable=f"{service.upper()}_GRPC_PORT",
                    env=shared | _settings(service, run, state),
                    log_path=state / f"{service}.log",
                )
            )
            for service in SERVICES
        }  # fmt: skip
        try:
            await asyncio.gather(
                *(p.wait_serving(within_s=_SERVING_WITHIN_S) for p in processes.values())
            )
            await asyncio.sleep(idle_s)  # idle: nothing calls them, nothing is on their topics
            return {service: _rss_mib(p.process.pid) for service, p in processes.items()}
        finally:
            for process in processes.values():
                process.kill()
            await _delete_run_topics(servers, run)
            await _drop_run_databases(servers, run)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    msg = f"no VmRSS for process {pid}"
    raise RuntimeError(msg)


async def _delete_run_topics(servers: ServerEndpoints, run: str) -> None:
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        ours = [topic for topic in await admin.list_topics() if run in topic]
    finally:
        await admin.close()
    await delete_topics(servers.kafka_bootstrap_servers, ours)


async def _drop_run_databases(servers: ServerEndpoints, run: str) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
    try:
        for name in await client.list_database_names():
            if run in name:
                await client.drop_database(name)
    finally:
        await client.close()
