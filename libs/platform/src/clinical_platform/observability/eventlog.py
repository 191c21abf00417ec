"""The event log writer's group commits: batch size, commit time, aborts, fencing."""

from __future__ import annotations

import time

from clinical_platform.observability.metrics import (
    COMMIT_BATCH_EVENTS,
    COMMIT_DURATION,
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
