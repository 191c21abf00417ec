"""The ports the application needs, and the values they speak; adapters/ implements them over
MongoDB, Kafka and Vault.

The trail items are the audit API's own messages (`Change`, `AccessRecord`): the read model
stores them as the projections decode them, and the application passes them through untouched.
"""

from __future__ import annotations

from typing import Protocol

from audit.domain.queries import AccessQuery, ExportQuery, HistoryQuery, Page
from clinical.audit.v1.access_pb2 import AccessRecord
from clinical.audit.v1.audit_pb2 import Change
from clinical_platform.security.chain import VerificationReport

__all__ = ["AccessRecord", "AuditTrail", "Change", "LogVerifier", "VerificationReport"]


class AuditTrail(Protocol):
    """The read model: changes and accesses in trail order, a page at a time."""

    async def changes(self, query: HistoryQuery) -> Page[Change]: ...

    async def accesses(self, query: AccessQuery) -> Page[AccessRecord]: ...

    async def patient_trail(self, query: ExportQuery) -> Page[Change | AccessRecord]: ...


class LogVerifier(Protocol):
    """Event partitions checked against their signed checkpoints."""

    async def partitions(self, topic: str) -> int | None:
        """The topic's partition count; None when there is no such topic."""
        ...

    async def verify(self, topic: str, partition: int) -> VerificationReport: ...
