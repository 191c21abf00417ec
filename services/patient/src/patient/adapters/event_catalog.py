"""The Patient aggregate's events and the protobuf payloads that carry them on the log."""

from __future__ import annotations

from clinical.events.v1 import patient_events_pb2 as events
from clinical_platform.eventlog.codec import EventCatalog
from patient.domain.patient import Patient

PATIENT_EVENTS: EventCatalog[Patient] = EventCatalog(
    Patient,
    {
        "PatientRegistered": events.PatientRegistered,
        "DemographicsUpdated": events.DemographicsUpdated,
        "PatientMatchAssessed": events.PatientMatchAssessed,
        "PatientsLinked": events.PatientsLinked,
        "PatientsUnlinked": events.PatientsUnlinked,
        "PatientForgotten": events.PatientForgotten,
    },
)
