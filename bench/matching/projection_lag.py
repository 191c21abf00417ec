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
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.behind_events / self.seconds if self.seconds > 0 else float("nan")


async def applied_events(patient: RunningPatient) -> int:
    total = 0
    async for document in patient.database[PATIENTS].find({}, {"version": 1}):
        total += int(document["version"])
    return total


async def catch_up_after_burst(
    patient: RunningPatient, patient_ids: Sequence[str], *, within_s: float = 300
) -> CatchUp:
    """Wait until the read model holds every event of ``patient_ids``; how many and how long."""
    committed = sum(patient.store.current_version(str(UUID(p))) for p in patient_ids)
    started = time.perf_counter()
    behind = committed - await applied_events(patient)
    while await applied_events(patient) < committed:
        if time.perf_counter() - started > within_s:
            break
        await asyncio.sleep(POLL_S)
    return CatchUp(max(behind, 0), time.perf_counter() - started)
