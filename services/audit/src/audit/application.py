"""AuditApp: the questions a security reviewer asks, answered from the read model and the log."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from audit.domain.errors import NotAnEventTopic, PartitionOutOfRange, UnknownTopic
from audit.domain.queries import AccessQuery, ExportQuery, HistoryQuery, Page
from audit.ports import AccessRecord, AuditTrail, Change, LogVerifier, VerificationReport


@dataclass(frozen=True)
class PartitionVerification:
    """One partition's verification report."""

    partition: int
    report: VerificationReport


class AuditApp:
    """History, access log, FHIR export and verification; no patient data is ever read."""

    def __init__(
        self, trail: AuditTrail, verifier: LogVerifier, *, event_topic_pattern: str
    ) -> None:
        self._trail = trail
        self._verifier = verifier
        self._event_topic = re.compile(event_topic_pattern)

    async def history(self, query: HistoryQuery) -> Page[Change]:
        """Every change to the aggregate, patient or aggregate type, by recorded_at, then
        version (newest first when the query asks)."""
        return await self._trail.changes(query)

    async def access_log(self, query: AccessQuery) -> Page[AccessRecord]:
        """Reads and refusals of the patient's data (or by the user), by occurred_at."""
        return await self._trail.accesses(query)

    async def patient_trail(self, query: ExportQuery) -> Page[Change | AccessRecord]:
        """The patient's changes and accesses in trail order (exported as FHIR AuditEvents)."""
        return await self._trail.patient_trail(query)

    async def verify(self, topic: str, partitions: Sequence[int]) -> list[PartitionVerification]:
        """Verify the partitions (all when none are named) against their checkpoints.

        Raises `NotAnEventTopic`, `UnknownTopic`, `PartitionOutOfRange`, and
        `KeyServiceUnavailableError` when Vault cannot check the signatures.
        """
        if not self._event_topic.match(topic):
            raise NotAnEventTopic
        count = await self._verifier.partitions(topic)
        if count is None:
            raise UnknownTopic
        outside = sorted({p for p in partitions if p >= count})
        if outside:
            raise PartitionOutOfRange(outside, count)
        chosen = sorted(set(partitions)) or list(range(count))
        reports = await asyncio.gather(*(self._verifier.verify(topic, p) for p in chosen))
        return [PartitionVerification(p, r) for p, r in zip(chosen, reports, strict=True)]
