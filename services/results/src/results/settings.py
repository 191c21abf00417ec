"""Configuration of the results service; its own variables start with RESULTS_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class ResultsSettings(BaseServiceSettings):
    """Shared connections plus RESULTS_GRPC_HOST, RESULTS_GRPC_PORT, RESULTS_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="RESULTS_")

    grpc_port: Port = 50053
