"""The matcher: reads the orders, results and notify logs and numbers each subscription's events.

One consumer per replica reads every partition of the three topics (its own consumer group,
so replicas do not split them) and merges the partitions in commit-time order (the records'
timestamps), holding a partition's records back until every other partition has either shown
a later record or caught up, plus a short grace. That merge is what delivers a patient's
events in log order even though their orders and results live in different partitions and
topics: a result is always committed after the order it answers.

Subscriptions are read from the same merged stream, so a subscription matches exactly the
events committed after its SubscriptionCreated record and before its SubscriptionDeleted.
Each replica numbers only the subscriptions whose partition it owns (a single writer per
sequence); the numbers live in ``notify_feed``, unique per (subscription, event), so a
restart that re-reads records it already handled numbers nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from google.protobuf.message import DecodeError
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import KeyServiceUnavailableError, PatientForgottenError
from notify.adapters import clinical_events
from notify.adapters.documents import FeedEntry, NotifyDocuments
from notify.application import SubscriptionRepository, Wakeups
from notify.domain.events import ClinicalEvent, matches
from notify.domain.policy import in_scope
from notify.domain.subscription import SubscriptionView

logger = logging.getLogger(__name__)

_TRANSIENT = (ConnectionFailure, KeyServiceUnavailableError)
_RETRY_S = 1.0
_COMMIT_EVERY_S = 1.0
# A partition that cannot be read to its end (a transaction left open) holds the merge back
# at most this long.
_MAX_HOLD_S = 5.0
_FACTS_CACHED = 100_000
_ENDS_KEPT = 64


@dataclass(frozen=True)
class _Arrival:
    """A record waiting in the merge, with the partitions' ends when it became visible."""

    record: ConsumerRecord[bytes, bytes]
    fetched_ms: int  # when the fetch response holding it came (wall clock, as aiokafka keeps)
    arrived: float


class _Ends:
    """Per partition, the high watermarks fetch responses reported, and when they came."""

    def __init__(self) -> None:
        self._seen: dict[TopicPartition, deque[tuple[int, int]]] = {}

    def observe(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            at, end = consumer.last_poll_timestamp(tp), consumer.highwater(tp)
            if at is None or end is None:
                continue
            seen = self._seen.setdefault(tp, deque(maxlen=_ENDS_KEPT))
            if not seen or seen[-1][0] != at:
                seen.append((at, end))

    def after(self, tp: TopicPartition, fetched_ms: int) -> int | None:
        """The partition's end in the first response at or after ``fetched_ms`` (None: none
        yet). Once that one is forgotten, a later one: a higher end, so still safe."""
        seen = self._seen.get(tp, ())
        return next((end for at, end in seen if at >= fetched_ms), None)


@dataclass
class _Active:
    view: SubscriptionView
    created_ts: int
    next_sequence: int


class Matcher:
    """Numbers matched events into the owned subscriptions' feeds; tells listeners about them."""

    def __init__(
        self,
        *,
        group: str,
        bootstrap_servers: str,
        clinical_topics: Sequence[str],
        notify_topic: str,
        documents: NotifyDocuments,
        subscriptions: SubscriptionRepository,
        cipher: EnvelopeCipher,
        owns: Callable[[str], bool],
        wakeups: Wakeups,
        on_subscription: Callable[[SubscriptionView], None],
        on_deleted: Callable[[str], None],
        grace_s: float,
    ) -> None:
        self._group = group
        self._bootstrap = bootstrap_servers
        self._clinical_topics = tuple(clinical_topics)
        self._notify_topic = notify_topic
        self._documents = documents
        self._subscriptions = subscriptions
        self._cipher = cipher
        self._owns = owns
        self._wakeups = wakeups
        self._on_subscription = on_subscription
        self._on_deleted = on_deleted
        self._grace_ms = grace_s * 1000
        self._active: dict[str, _Active] = {}
        # The index facts of recent orders and results (write-through), so matching an event
        # rarely costs a read of notify_index.
        self._facts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.matched = 0

    def forget_patient(self, patient_id: str) -> None:
        """Drop the cached facts about a patient who was just forgotten."""
        for aggregate_id in [a for a, f in self._facts.items() if f["patient_id"] == patient_id]:
            del self._facts[aggregate_id]

    async def run(self) -> None:
        """Consume until cancelled."""
        await self._load()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self._group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed",
        )  # fmt: skip
        consumer.subscribe([*self._clinical_topics, self._notify_topic])
        try:
            await consumer.start()
            await self._consume(consumer)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _load(self) -> None:
        """The owned live subscriptions and their next numbers, as the last run left them."""
        for view, created_ts in await _retrying(self._documents.live_subscriptions):
            if not self._owns(view.subscription_id):
                continue
            self._on_subscription(view)
            if created_ts is not None:
                head = await self._documents.head(view.subscription_id)
                self._active[view.subscription_id] = _Active(view, int(created_ts), head + 1)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        buffers: dict[TopicPartition, deque[_Arrival]] = {}
        ends = _Ends()
        emitted: dict[TopicPartition, int] = {}
        last_commit = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            ends.observe(consumer)
            now = time.monotonic()
            for tp, records in batch.items():
                fetched_ms = consumer.last_poll_timestamp(tp) or 0
                queue = buffers.setdefault(tp, deque())
                queue.extend(_Arrival(record, fetched_ms, now) for record in records)
            positions = {tp: await consumer.position(tp) for tp in consumer.assignment()}
            while (head_tp := _earliest(buffers)) is not None:
                head = buffers[head_tp][0]
                if not self._may_emit(head, head_tp, buffers, positions, ends):
                    break
                buffers[head_tp].popleft()
                await self._handle(head.record)
                emitted[head_tp] = head.record.offset
            if emitted and time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                offsets = {tp: OffsetAndMetadata(o + 1, "") for tp, o in emitted.items()}
                await consumer.commit(offsets)
                emitted.clear()
                last_commit = time.monotonic()

    def _may_emit(
        self,
        head: _Arrival,
        head_tp: TopicPartition,
        buffers: dict[TopicPartition, deque[_Arrival]],
        positions: dict[TopicPartition, int],
        ends: _Ends,
    ) -> bool:
        """Whether no partition can still produce a record committed before this one.

        Every other partition must either have a later record buffered (this one is the
        earliest), or have been read up to its end as a fetch response no older than this
        record's showed it: a record committed before this one was visible sits below that
        end, even while its transaction's commit marker (written after the producer's commit
        returns) is still on its way. So causes always come before their effects (an order's
        signature before its result). The grace only orders events committed at nearly the
        same moment by their timestamps. A partition that cannot be read to its end (a hung
        transaction) holds the merge back at most `_MAX_HOLD_S`.
        """
        if time.monotonic() - head.arrived >= _MAX_HOLD_S:
            return True
        for tp, position in positions.items():
            if tp == head_tp or buffers.get(tp):
                continue
            end = ends.after(tp, head.fetched_ms)
            if end is None or position < end:
                return False
        return bool(head.record.timestamp <= time.time() * 1000 - self._grace_ms)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = Envelope.FromString(record.value or b"")
        except DecodeError:
            logger.error("undecodable record skipped", extra=_origin(record))
            return
        while True:
            try:
                if record.topic == self._notify_topic:
                    await self._subscription_event(envelope, record.timestamp)
                else:
                    await self._clinical_event(envelope, record.timestamp)
                return
            except _TRANSIENT as transient:
                logger.warning(
                    "read model or key service unreachable; retrying",
                    extra={**_origin(record), "error": type(transient).__name__},
                )
                await asyncio.sleep(_RETRY_S)

    async def _subscription_event(self, envelope: Envelope, timestamp: int) -> None:
        subscription_id = envelope.aggregate_id
        if not self._owns(subscription_id):
            return
        subscription = await self._subscriptions.get(UUID(subscription_id))
        if subscription is None:
            return
        await self._documents.save_subscription(subscription, subscription.version)
        if envelope.event_type == "SubscriptionCreated":
            await self._documents.set_created_timestamp(subscription_id, timestamp)
        if envelope.event_type == "SubscriptionDeleted" or subscription.deleted:
            await self._documents.set_deleted_timestamp(subscription_id, timestamp)
            self._active.pop(subscription_id, None)
            self._on_deleted(subscription_id)
            self._wakeups.wake(subscription_id)
            return
        view = await self._documents.subscription(subscription_id)
        if view is None:  # pragma: no cover - just written
            return
        active = self._active.get(subscription_id)
        if active is None:
            head = await self._documents.head(subscription_id)
            self._active[subscription_id] = _Active(view, timestamp, head + 1)
        else:
            active.view = view
        self._on_subscription(view)

    async def _clinical_event(self, envelope: Envelope, timestamp: int) -> None:
        plain = None
        if envelope.event_type in clinical_events.READ_PAYLOAD:
            try:
                plain = await self._cipher.decrypted(envelope)
            except PatientForgottenError:
                return  # a forgotten patient's events match nothing
            await self._index(plain)
        topic = clinical_events.TOPIC_OF.get(envelope.event_type)
        if topic is None or not self._active:
            return
        facts = await self._indexed(envelope.aggregate_id)
        event = clinical_events.clinical_event(envelope, plain, facts)
        if event is None:
            return
        interested = [
            active for active in self._active.values()
            if event.topic in active.view.topics and timestamp > active.created_ts
            and in_scope(active.view.owner, event.patient_id)
            and matches(active.view.event_filter, event)
        ]  # fmt: skip
        if not interested:
            return
        await self._documents.keep_event(
            envelope.event_id, envelope.patient_id, envelope.SerializeToString()
        )
        for active in interested:
            await self._number(active, event)

    async def _index(self, plain: Envelope) -> None:
        order = None
        if plain.event_type == clinical_events.RESULT_POSTED:
            order_id = clinical_events.posted_order_id(plain)
            order = await self._indexed(order_id)
        update = clinical_events.index_update(plain, order)
        if update is not None:
            await self._documents.index(update.aggregate_id, update.version, update.fields)
            self._remember(update.aggregate_id, update.fields)

    async def _indexed(self, aggregate_id: str) -> dict[str, Any] | None:
        if (facts := self._facts.get(aggregate_id)) is not None:
            self._facts.move_to_end(aggregate_id)
            return facts
        document = await self._documents.indexed(aggregate_id)
        if document is not None and not document.get("forgotten"):
            self._remember(aggregate_id, document)
        return document

    def _remember(self, aggregate_id: str, facts: dict[str, Any]) -> None:
        self._facts[aggregate_id] = facts
        self._facts.move_to_end(aggregate_id)
        if len(self._facts) > _FACTS_CACHED:
            self._facts.popitem(last=False)

    async def _number(self, active: _Active, event: ClinicalEvent) -> None:
        subscription_id = active.view.subscription_id
        for _ in range(3):
            entry = FeedEntry(
                subscription_id=subscription_id, sequence=active.next_sequence,
                event_id=event.event_id, topic=event.topic, patient_id=event.patient_id,
                order_id=event.order_id, result_id=event.result_id, version=event.version,
                occurred_at=event.occurred_at,
            )  # fmt: skip
            try:
                if await self._documents.append(entry):
                    active.next_sequence += 1
                    self.matched += 1
                    self._wakeups.wake(subscription_id)
                return
            except DuplicateKeyError:
                # The number was taken (a writer that still thought it owned the subscription):
                # continue after the newest.
                active.next_sequence = await self._documents.head(subscription_id) + 1
        logger.error("could not number a notification", extra={"subscription": subscription_id})


def _earliest(buffers: dict[TopicPartition, deque[_Arrival]]) -> TopicPartition | None:
    heads = [(q[0].record.timestamp, tp.topic, tp.partition, tp) for tp, q in buffers.items() if q]
    return min(heads)[3] if heads else None


async def _retrying(call: Callable[[], Any]) -> Any:
    while True:
        try:
            return await call()
        except ConnectionFailure:
            await asyncio.sleep(_RETRY_S)


def _origin(record: ConsumerRecord[Any, Any]) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
