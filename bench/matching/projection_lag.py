"""How fast the patient read model catches up after a burst of registrations.

Every patient's events are numbered 1, 2, ... so the events the projection has applied are the
sum of the versions its `patients` documents hold, and the events committed are the sum of the
event store's current versions of the same patients. The difference is the projection's lag
in events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from patient.adapters.golden_records import PATIENTS
from patient.bootstrap import RunningPatient

POLL_S = 0.25


@dataclass(frozen=True)
class CatchUp:
    behind_events: int
    applied_events: int
    seconds: float
    caught_up: bool

    @property
    def catch_up_s(self) -> float:
        """How long until it held everything; NaN when it did not within the wait."""
        return self.seconds if self.caught_up else float("nan")


async def applied_events(patient: RunningPatient) -> int:
    total = 0
    async for document in patient.database[PATIENTS].find({}, {"version": 1}):
        total += int(document["version"])
    return total


async def catch_up_after_burst(
    patient: RunningPatient, patient_ids: Sequence[str], *, within_s: float
) -> CatchUp:
    """Wait (at most ``within_s``) until the read model holds every event of ``patient_ids``."""
    committed = sum(patient.store.current_version(str(UUID(p))) for p in patient_ids)
    started = time.perf_counter()
    first = applied = await applied_events(patient)
    while applied < committed and time.perf_counter() - started < within_s:
        await asyncio.sleep(POLL_S)
        applied = await applied_events(patient)
    return CatchUp(
        max(committed - first, 0), applied - first, time.perf_counter() - started,
        applied >= committed,
    )  # fmt: skip
