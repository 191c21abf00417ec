"""Kafka consumers that need more than one record at a time (the commit-order merge)."""

from clinical_platform.consumers.commit_order import (
    CommitOrderMerge,
    PartitionFetches,
    consume_in_commit_order,
)

__all__ = ["CommitOrderMerge", "PartitionFetches", "consume_in_commit_order"]
