"""Configuration of the patient service; its own variables start with PATIENT_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.settings import Port, RecordServiceSettings


class PatientSettings(RecordServiceSettings):
    """Shared connections plus PATIENT_GRPC_PORT, PATIENT_MONGODB_DATABASE, PATIENT_MATCH_..."""

    model_config = SettingsConfigDict(env_prefix="PATIENT_")

    grpc_port: Port = 18051
    # Decides the event topic (clinical.<name>.events.v1) and prefixes the consumer groups.
    # Only an isolated copy of the service (a test) has a reason to change it.
    event_log_name: str = "patient"
    mongodb_database: str = "patient"
    # Where orders come from: their ordering clinician has a care relationship with the patient.
    orders_events_topic: str = events_topic("orders")
    # Fellegi-Sunter score thresholds (log2 likelihood ratio); docs/matching.md explains them.
    match_threshold: float = 20.0
    review_threshold: float = 8.0
