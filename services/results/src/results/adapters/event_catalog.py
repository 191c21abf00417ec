"""The LabResult aggregate's events and the protobuf payloads that carry them on the log."""

from __future__ import annotations

from clinical.events.v1 import results_events_pb2 as events
from clinical_platform.eventlog.codec import EventCatalog
from results.domain.result import LabResult

RESULT_EVENTS: EventCatalog[LabResult] = EventCatalog(
    LabResult,
    {
        "ResultPosted": events.ResultPosted,
        "ResultAmended": events.ResultAmended,
        "ResultCorrected": events.ResultCorrected,
    },
)
