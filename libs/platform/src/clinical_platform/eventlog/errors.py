"""Typed failures of the event log; the gRPC layer maps each to one status code."""

from __future__ import annotations

from clinical_platform.validation import FieldViolation


class EventLogError(Exception):
    """Base class of every event log failure."""


class EventRejectedError(EventLogError):
    """A malformed or oversized event; refused before anything is appended (INVALID_ARGUMENT)."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class ConcurrencyError(EventLogError):
    """The aggregate moved past the version the command expected (ABORTED)."""

    def __init__(self, aggregate_id: str, expected_version: int, actual_version: int) -> None:
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"aggregate {aggregate_id} is at version {actual_version}, "
            f"the command expected version {expected_version}"
        )


class NotPartitionOwnerError(EventLogError):
    """Another replica owns the aggregate's partition (UNAVAILABLE, with the owner's address)."""

    def __init__(self, partition: int, owner_address: str) -> None:
        self.partition = partition
        self.owner_address = owner_address
        super().__init__(f"partition {partition} is owned by the replica at {owner_address}")


class WriterFencedError(EventLogError):
    """A newer writer took over this partition; this replica may no longer append (UNAVAILABLE)."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        super().__init__(f"this replica was fenced off partition {partition} by a newer writer")


class WriterOverloadedError(EventLogError):
    """The partition writer's queue is full; nothing was appended (RESOURCE_EXHAUSTED, retry
    after ``retry_after_s``)."""

    def __init__(self, partition: int, retry_after_s: float) -> None:
        self.partition = partition
        self.retry_after_s = retry_after_s
        super().__init__(f"the writer of partition {partition} has too many appends queued")


class TopicLayoutError(EventLogError):
    """The event topic's partitions or the writers' replica count changed since the topic was
    laid out (eventlog.layout): routing would change, so the writer refuses to start."""


class EventLogUnavailableError(EventLogError):
    """The log could not confirm the append; nothing is acknowledged (UNAVAILABLE, retry)."""
