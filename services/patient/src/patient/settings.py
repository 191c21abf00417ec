"""Configuration of the patient service; its own variables start with PATIENT_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class PatientSettings(BaseServiceSettings):
    """Shared connections plus PATIENT_GRPC_HOST, PATIENT_GRPC_PORT, PATIENT_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="PATIENT_")

    grpc_port: Port = 50051
