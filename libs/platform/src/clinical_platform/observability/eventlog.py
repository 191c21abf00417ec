"""The event log: group commits (batch size, commit time, aborts, fencing) and records set
aside on a dead-letter topic."""

from __future__ import annotations

import time

from clinical_platform.observability.metrics import (
    COMMIT_BATCH_EVENTS,
    COMMIT_DURATION,
    DEAD_LETTERS,
    TRANSACTION_ABORTS,
    WRITER_FENCED,
)


class CommitMetrics:
    """Observes one group commit of ``topic``, timed from its creation."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._started = time.perf_counter()

    def committed(self, events: int) -> None:
        COMMIT_BATCH_EVENTS.labels(self._topic).observe(events)
        COMMIT_DURATION.labels(self._topic).observe(time.perf_counter() - self._started)

    def aborted(self) -> None:
        TRANSACTION_ABORTS.labels(self._topic).inc()

    def fenced(self) -> None:
        WRITER_FENCED.labels(self._topic).inc()


def dead_lettered(consumer_group: str, topic: str) -> None:
    """Count one record of ``topic`` set aside as poison by ``consumer_group``."""
    DEAD_LETTERS.labels(consumer_group, topic).inc()
