"""Feeds the matcher's in-memory `CandidateIndex` from the patient topic.

At start it reads every partition from the beginning up to the end offsets (read_committed:
the last stable offset), decrypting demographics with the service's cipher, before the service
takes a registration: the index then holds every record committed so far. Afterwards it follows
the topic, which brings in what other replicas commit on their partitions; this replica's own
commits are recorded by the application at commit time and arrive here again as no-ops
(versions). No consumer group and no committed offsets: the index lives in memory only, so each
start rebuilds it from the log, like a Kafka Streams global table without a state store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from google.protobuf.message import DecodeError

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_consumer
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError
from patient.adapters.event_catalog import PATIENT_EVENTS, patient_event
from patient.matching.candidate_index import CandidateIndex

logger = logging.getLogger(__name__)

_DEMOGRAPHICS = frozenset({"PatientRegistered", "DemographicsUpdated"})
_FETCH = {"timeout_ms": 100, "max_records": 2000}


class CandidateFeed:
    """Catches the index up with the topic, then keeps it following."""

    def __init__(
        self, kafka: KafkaConnection, topic: str, cipher: EnvelopeCipher, index: CandidateIndex
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._cipher = cipher
        self._index = index
        self._consumer: AIOKafkaConsumer | None = None
        self.applied = 0

    async def catch_up(self) -> None:
        """Apply every committed record of every partition, up to the end offsets."""
        admin = build_admin(self._kafka)
        await admin.start()
        try:
            count = await partition_count(admin, self._topic)
        finally:
            await admin.close()
        consumer = build_consumer(self._kafka, fetch_max_wait_ms=100)
        await consumer.start()
        self._consumer = consumer
        partitions = [TopicPartition(self._topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        for partition in partitions:
            while await consumer.position(partition) < end[partition]:
                fetched = await consumer.getmany(partition, **_FETCH)
                for record in fetched.get(partition, []):
                    await self._apply(record)
        logger.info(
            "candidate index caught up",
            extra={"topic": self._topic, "records": self.applied, "indexed": len(self._index)},
        )

    async def follow(self) -> None:
        """Apply what other replicas commit, until cancelled."""
        consumer = self._consumer
        if consumer is None:
            msg = "catch_up must run before follow"
            raise RuntimeError(msg)
        while True:
            fetched = await consumer.getmany(**_FETCH)
            for records in fetched.values():
                for record in records:
                    await self._apply(record)

    async def stop(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._consumer.stop(), 5)
            self._consumer = None

    async def _apply(self, record: ConsumerRecord[Any, Any]) -> None:
        self.applied += 1
        try:
            envelope = Envelope.FromString(record.value)
        except DecodeError:
            logger.error("undecodable record skipped", extra={"offset": record.offset})
            return
        if envelope.aggregate_type != PATIENT_EVENTS.aggregate_type:
            return
        patient_id = UUID(envelope.aggregate_id)
        if envelope.event_type == "PatientForgotten":
            self._index.drop(patient_id)
            return
        # Only demographics matter for blocking: links and assessments are not even decrypted.
        if envelope.event_type not in _DEMOGRAPHICS:
            return
        if self._index.version_of(patient_id) >= envelope.aggregate_version:
            return  # recorded at commit by this replica, or already applied
        try:
            plain = await self._cipher.decrypted(envelope)
        except PatientForgottenError:
            self._index.drop(patient_id)
            return
        demographics = vars(patient_event(plain))["demographics"]
        self._index.record(patient_id, plain.aggregate_version, demographics)
