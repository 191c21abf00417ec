"""The index facts of recent orders and results, cached in front of ``notify_index``.

Written through, so matching an event rarely costs a read of the index; a forgotten patient's
facts are dropped at once (`forget_patient`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from clinical.events.v1.envelope_pb2 import Envelope
from notify.adapters import clinical_events
from notify.ports import EventIndex

_FACTS_CACHED = 100_000


class FactCache:
    def __init__(self, index: EventIndex, *, size: int = _FACTS_CACHED) -> None:
        self._index = index
        self._size = size
        self._facts: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def learn(self, plain: Envelope) -> None:
        """Index what the (decrypted) event tells about its order or result."""
        order = None
        if plain.event_type == clinical_events.RESULT_POSTED:
            order = await self.of(clinical_events.posted_order_id(plain))
        update = clinical_events.index_update(plain, order)
        if update is not None:
            await self._index.index(update.aggregate_id, update.version, update.fields)
            self._remember(update.aggregate_id, update.fields)

    async def of(self, aggregate_id: str) -> dict[str, Any] | None:
        """The facts of an order or result (None: none known)."""
        if (facts := self._facts.get(aggregate_id)) is not None:
            self._facts.move_to_end(aggregate_id)
            return facts
        document = await self._index.indexed(aggregate_id)
        if document is not None and not document.get("forgotten"):
            self._remember(aggregate_id, document)
        return document

    def forget_patient(self, patient_id: str) -> None:
        """Drop the cached facts about a patient who was just forgotten."""
        for aggregate_id in [a for a, f in self._facts.items() if f["patient_id"] == patient_id]:
            del self._facts[aggregate_id]

    def _remember(self, aggregate_id: str, facts: dict[str, Any]) -> None:
        self._facts[aggregate_id] = facts
        self._facts.move_to_end(aggregate_id)
        if len(self._facts) > self._size:
            self._facts.popitem(last=False)
