"""Verifying event partitions on Kafka against their checkpoints (the `LogVerifier` port).

Reads the whole partition and its checkpoints, then runs the kernel's `verify_partition` with
the Transit signer: signatures are checked by Vault, the rest locally. A partition is read into
memory, so the number of verifications at once is bounded.
"""

from __future__ import annotations

import asyncio

from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoint_log import read_checkpoints, read_partition
from clinical_platform.security.ports import Signer
from clinical_platform.security.verification import verify_partition


class KafkaPartitionVerifier:
    """The `LogVerifier` port: partitions and checkpoints read from Kafka, checked by Vault."""

    def __init__(
        self,
        kafka: KafkaConnection,
        checkpoints_topic: str,
        signer: Signer,
        *,
        concurrency: int,
    ) -> None:
        self._kafka = kafka
        self._checkpoints_topic = checkpoints_topic
        self._signer = signer
        self._slots = asyncio.Semaphore(concurrency)

    async def partitions(self, topic: str) -> int | None:
        """The topic's partition count; None when there is no such topic."""
        admin = build_admin(self._kafka)
        await admin.start()
        try:
            if topic not in await admin.list_topics():
                return None
            return await partition_count(admin, topic)
        finally:
            await admin.close()

    async def verify(self, topic: str, partition: int) -> VerificationReport:
        """Raises `KeyServiceUnavailableError` when Vault cannot check signatures."""
        async with self._slots:
            records = await read_partition(self._kafka, topic, partition)
            checkpoints = (
                await read_checkpoints(self._kafka, self._checkpoints_topic, topic, partition)
                if await self.partitions(self._checkpoints_topic) is not None
                else []  # no checkpoint was ever written: every record is unattested
            )
            return await verify_partition(
                records, checkpoints, self._signer, topic=topic, partition=partition
            )
