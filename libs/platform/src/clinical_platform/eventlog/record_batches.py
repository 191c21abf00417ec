"""A transaction's records sent as whole record batches: one future per batch, not per record.

aiokafka's ``send`` costs a coroutine, a metadata check and a future per record; a group
commit knows all its records up front, so it fills batches itself (``create_batch``) and submits
each once (``send_batch``). A batch's records take consecutive offsets from its base offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

Header = tuple[str, bytes]
OutgoingRecord = tuple[bytes, bytes, Sequence[Header]]
"""Key, value and headers of one record."""


class RecordBatches:
    """The record batches of one transaction on one partition, and the offsets they got."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partition: int) -> None:
        self._producer = producer
        self._topic = topic
        self._partition = partition
        # Per submitted batch: its delivery, and each record's offset within the batch.
        self._submitted: list[tuple[asyncio.Future[Any], list[int]]] = []

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        """Queue the records, in order, in as few batches as the producer's batch size allows."""
        builder = self._producer.create_batch()
        deltas: list[int] = []
        for key, value, headers in records:
            metadata = builder.append(key=key, value=value, timestamp=None, headers=headers)
            if metadata is None:  # full: the record opens the next batch
                await self._submit(builder, deltas)
                builder, deltas = self._producer.create_batch(), []
                metadata = builder.append(key=key, value=value, timestamp=None, headers=headers)
            deltas.append(metadata.offset)
        if deltas:
            await self._submit(builder, deltas)

    async def offsets(self) -> list[int]:
        """Each record's offset, in the order sent (once the transaction committed)."""
        offsets: list[int] = []
        for delivered, deltas in self._submitted:
            base = (await delivered).offset
            offsets += [base + delta for delta in deltas]
        return offsets

    def abandon(self) -> None:
        """The transaction failed: its outcome is reported through the commit, so nobody reads
        the batches' deliveries; retrieve their errors so asyncio does not warn about them."""
        for delivered, _deltas in self._submitted:
            delivered.add_done_callback(_retrieve_exception)

    async def _submit(self, builder: Any, deltas: list[int]) -> None:
        delivered = await self._producer.send_batch(builder, self._topic, partition=self._partition)
        self._submitted.append((delivered, deltas))


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
