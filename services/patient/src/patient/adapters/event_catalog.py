"""The Patient aggregate's events and the protobuf payloads that carry them on the log."""

from __future__ import annotations

from datetime import UTC

from clinical.events.v1 import patient_events_pb2 as events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.codec import DomainEvent, EventCatalog
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
        "CareTeamMemberAssigned": events.CareTeamMemberAssigned,
        "CareTeamMemberEnded": events.CareTeamMemberEnded,
    },
)


def patient_event(envelope: Envelope) -> DomainEvent:
    """The domain event a decrypted envelope carries."""
    return PATIENT_EVENTS.from_stored(
        envelope.aggregate_id,
        envelope.aggregate_version,
        envelope.occurred_at.ToDatetime(tzinfo=UTC),
        envelope.event_type,
        envelope.payload,
    )
