"""What ``clinical admin verify`` and ``rewrap`` run in this process, and their summaries.

The services' stack (Kafka, Vault clients) is imported inside each function: it is only for
operators, and the rest of the CLI starts without it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from clinical_cli.errors import CommandError
from clinical_cli.progress import Advance

# The audit service's settings (its Kafka principal reads every log; its Vault token verifies
# checkpoint signatures), loaded by name as `admin rebuild` loads a service's.
AUDIT_SETTINGS = "audit.settings:AuditSettings"


async def verify_topics(settings: Any, topics: list[str], advance: Advance) -> list[dict[str, Any]]:
    """A row per partition of each topic (every event topic when none is named), verified one
    after another with a bar each."""
    from clinical_platform.clients.kafka import KafkaConnection  # noqa: PLC0415
    from clinical_platform.clients.vault import build_vault_client  # noqa: PLC0415
    from clinical_platform.security.log_verification import (  # noqa: PLC0415
        UnknownTopicError,
        topics_matching,
        verify_topic,
    )
    from clinical_platform.security.wiring import build_signer  # noqa: PLC0415

    pattern = settings.event_topic_pattern
    outside = [topic for topic in topics if not re.match(pattern, topic)]
    if outside:
        msg = f"not an event topic (AUDIT_EVENT_TOPIC_PATTERN): {', '.join(outside)}"
        raise CommandError("INVALID_ARGUMENT", msg)
    kafka = KafkaConnection.from_settings(settings)
    signer = await asyncio.to_thread(build_signer, build_vault_client(settings), settings)
    rows = []
    # A topic named twice is verified once.
    for topic in list(dict.fromkeys(topics)) or await topics_matching(kafka, pattern):

        def told(topic: str, partition: int, done: int, total: int) -> None:
            advance(f"verify {topic} [{partition}]", done, total)

        try:
            reports = await verify_topic(kafka, topic, signer,
                                         checkpoints_topic=settings.checkpoints_topic,
                                         on_progress=told)  # fmt: skip
        except UnknownTopicError:
            raise CommandError("NOT_FOUND", f"no topic {topic}") from None
        rows += [_partition_row(r.topic, r.partition, r.report) for r in reports]
    return rows


def failed_partitions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if not row["ok"]]


def _partition_row(topic: str, partition: int, report: Any) -> dict[str, Any]:
    """What an operator reads of a partition's report: records verified, the latest valid
    checkpoint (the last offset it covers, when it was signed), the first finding."""
    attested_at = report.attested_at.isoformat() if report.attested_at else None
    return {"topic": topic, "partition": partition, "ok": report.ok, "records": report.records,
            "attested_through": report.attested_through, "attested_at": attested_at,
            "unattested": report.unattested, "first_bad_offset": report.first_bad_offset,
            "reason": report.reason, "findings": len(report.findings)}  # fmt: skip


async def rewrap_keys(settings: Any, advance: Advance) -> dict[str, Any]:
    """Every stored data key rewrapped under the latest KEK version; the counts and versions."""
    from clinical_platform.clients.vault import build_vault_client  # noqa: PLC0415
    from clinical_platform.security.vault_adapters import TransitKeyEncryption  # noqa: PLC0415
    from clinical_platform.security.wiring import build_keyring  # noqa: PLC0415

    client = await asyncio.to_thread(build_vault_client, settings)
    keyring = build_keyring(client, settings)
    if not await keyring.check_health():
        raise CommandError("UNAVAILABLE", f"the key service is unavailable: "
                           f"{keyring.unavailable_reason}")  # fmt: skip

    def told(done: int, total: int) -> None:
        advance(f"rewrap {keyring.kek_name}", done, total)

    report = await keyring.rewrap_all(on_progress=told)
    kek = TransitKeyEncryption(client, settings.vault_phi_key, settings.vault_transit_mount)
    _min_version, latest = await asyncio.to_thread(kek.versions)
    return {"kek": keyring.kek_name, "latest_version": latest, "rewrapped": report.rewrapped,
            "already_current": report.already_current, "vanished": report.vanished,
            "lowest_kek_version": report.lowest_kek_version}  # fmt: skip
