"""Read models fed from the event topics: projections, their runner, rebuilds, versioned upserts."""

from clinical_platform.projections.applied import AppliedVersions, applied_versions
from clinical_platform.projections.changes import (
    ChangeProjection,
    VersionedChange,
    apply_changes,
    write_changes,
)
from clinical_platform.projections.documents import (
    ensure_indexes,
    upsert_versioned,
    wait_for_version,
)
from clinical_platform.projections.projection import (
    MessageProjection,
    Projection,
    TopicProjection,
)
from clinical_platform.projections.rebuild import rebuild_projection
from clinical_platform.projections.runner import ProjectionRunner, dead_letter_topic

__all__ = [
    "AppliedVersions",
    "ChangeProjection",
    "MessageProjection",
    "Projection",
    "ProjectionRunner",
    "TopicProjection",
    "VersionedChange",
    "applied_versions",
    "apply_changes",
    "dead_letter_topic",
    "ensure_indexes",
    "rebuild_projection",
    "upsert_versioned",
    "wait_for_version",
    "write_changes",
]
