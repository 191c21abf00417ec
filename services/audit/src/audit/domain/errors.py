"""What a reviewer can ask that the trail cannot answer. Messages name no request values."""

from __future__ import annotations

from clinical_platform.validation import FieldViolation, InvalidRequest


class AuditQueryError(Exception):
    """Base of the audit service's refusals."""


class NotAnEventTopic(AuditQueryError, InvalidRequest):  # noqa: N818 - a state of the request
    """Only event topics are verified (by the service's event topic pattern)."""

    def __init__(self) -> None:
        InvalidRequest.__init__(self, [FieldViolation("topic", "only event topics are verified")])


class UnknownTopic(AuditQueryError):  # noqa: N818
    """There is no such topic on the broker (NOT_FOUND)."""

    def __init__(self) -> None:
        super().__init__("no such topic")


class PartitionOutOfRange(AuditQueryError, InvalidRequest):  # noqa: N818
    """Partitions were named that the topic does not have."""

    def __init__(self, partitions: list[int], count: int) -> None:
        InvalidRequest.__init__(
            self, [FieldViolation("partitions", f"the topic has partitions 0 to {count - 1}")]
        )
        self.partitions = partitions
        self.count = count
