"""The access-audit outbox: how many access records wait to be published."""

from __future__ import annotations

from clinical_platform.observability.metrics import ACCESS_AUDIT_OUTBOX_DEPTH, BREAK_GLASS_READS


def outbox_depth(records: int) -> None:
    ACCESS_AUDIT_OUTBOX_DEPTH.set(records)


def break_glass_read() -> None:
    """Count one read of patient data under an emergency justification."""
    BREAK_GLASS_READS.inc()
