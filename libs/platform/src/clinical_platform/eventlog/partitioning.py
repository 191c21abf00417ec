"""Which partition an aggregate lives in, and which replica owns (writes) that partition."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from aiokafka.partitioner import murmur2


# murmur2 is pure Python (tens of microseconds), and every command asks for its aggregate's
# partition two or three times: remember the answer for the aggregates in use.
@lru_cache(maxsize=65_536)
def partition_for(aggregate_id: str, partitions: int) -> int:
    """Kafka's default partitioning of the record key, so every Kafka tool agrees with us."""
    # Same as the Java client: positive murmur2 of the key bytes, modulo the partition count.
    hashed: int = murmur2(aggregate_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class PartitionOwnership:
    """Static assignment by replica ordinal: replica r of n owns every partition p with p % n == r.

    It suits a Kubernetes StatefulSet, whose pods keep their ordinal (orders-0, orders-1, ...)
    across restarts. ``address_template`` formats an ordinal into the replica's gRPC address,
    e.g. "orders-{ordinal}.orders:18052", so a refused command can name the owner.
    """

    replica_ordinal: int
    replica_count: int
    address_template: str

    def __post_init__(self) -> None:
        if self.replica_count < 1 or not 0 <= self.replica_ordinal < self.replica_count:
            msg = f"replica ordinal {self.replica_ordinal} is outside 0..{self.replica_count - 1}"
            raise ValueError(msg)

    def owner_of(self, partition: int) -> int:
        return partition % self.replica_count

    def owns(self, partition: int) -> bool:
        return self.owner_of(partition) == self.replica_ordinal

    def owned(self, partitions: int) -> list[int]:
        """The partitions this replica writes, out of a topic's ``partitions``."""
        return [p for p in range(partitions) if self.owns(p)]

    def address_of_owner(self, partition: int) -> str:
        return self.address_template.format(ordinal=self.owner_of(partition))
