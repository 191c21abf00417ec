"""How long events wait to be attested: the age of each partition's oldest event that is in
no signed checkpoint yet, read from the checkpointers at scrape time (0 while none waits).

An idle partition does not age: there is nothing to attest. A checkpointer that cannot sign
(Vault away) or publish (Kafka away) keeps its events pending, and the age grows.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clinical_platform.observability.metrics import REGISTRY


class Attesting(Protocol):
    """A partition's checkpointer (clinical_platform.security.checkpoints.Checkpointer)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    def unattested_for(self) -> float: ...


class _CheckpointAge(Collector):
    def __init__(self) -> None:
        # Weak: a checkpointer of a partition this replica gave up leaves with its series.
        self.watched: weakref.WeakSet[Attesting] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "clinical_checkpoint_age_seconds",
            "Seconds the partition's oldest event not yet in a signed checkpoint has waited.",
            labels=["topic", "partition"],
        )
        oldest: dict[tuple[str, str], float] = {}
        for checkpointer in list(self.watched):
            key = (checkpointer.topic, str(checkpointer.partition))
            oldest[key] = max(oldest.get(key, 0.0), checkpointer.unattested_for())
        for (topic, partition), seconds in oldest.items():
            age.add_metric([topic, partition], seconds)
        yield age


_COLLECTOR = _CheckpointAge()
REGISTRY.register(_COLLECTOR)


def watch_checkpointer(checkpointer: Attesting) -> None:
    """Export ``checkpointer``'s age for as long as it exists."""
    _COLLECTOR.watched.add(checkpointer)
