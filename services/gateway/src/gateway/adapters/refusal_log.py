"""Refusals at the edge, as structured audit log lines (reason codes and ids, never tokens)."""

from __future__ import annotations

import logging

from gateway.ports import Refusal

logger = logging.getLogger("gateway.audit")


class RefusalLog:
    """Keeps the last refusals in memory too (bounded), for the gateway's own tests and ops."""

    def __init__(self, keep: int = 1000) -> None:
        self._keep = keep
        self.recent: list[Refusal] = []

    async def refused(self, refusal: Refusal) -> None:
        self.recent = [*self.recent[-(self._keep - 1) :], refusal]
        logger.warning(
            "request refused",
            extra={"event": "gateway.refused", "reason": refusal.reason,
                   "subject": refusal.subject, "client_id": refusal.client_id,
                   "operation": refusal.operation, "request_id": refusal.request_id},
        )  # fmt: skip
