"""Read models fed from the event topics: projections, their runner, rebuilds, versioned upserts."""

from clinical_platform.projections.documents import (
    ensure_indexes,
    upsert_versioned,
    wait_for_version,
)
from clinical_platform.projections.projection import MessageProjection, Projection
from clinical_platform.projections.rebuild import rebuild_projection
from clinical_platform.projections.runner import ProjectionRunner, dead_letter_topic

__all__ = [
    "MessageProjection",
    "Projection",
    "ProjectionRunner",
    "dead_letter_topic",
    "ensure_indexes",
    "rebuild_projection",
    "upsert_versioned",
    "wait_for_version",
]
