"""Configuration of the patient service; its own variables start with PATIENT_."""

from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class PatientSettings(BaseServiceSettings):
    """Shared connections plus PATIENT_GRPC_PORT, PATIENT_MONGODB_DATABASE, PATIENT_MATCH_..."""

    model_config = SettingsConfigDict(env_prefix="PATIENT_")

    grpc_port: Port = 18051
    mongodb_database: str = "patient"
    # Fellegi-Sunter score thresholds (log2 likelihood ratio); docs/matching.md explains them.
    match_threshold: float = 20.0
    review_threshold: float = 8.0
    # Reads wait for "at least version N" no longer than this, even with a longer deadline.
    read_wait_max_s: Annotated[float, Field(gt=0)] = 10.0
