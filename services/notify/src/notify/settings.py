"""Configuration of the notify service; its own variables start with NOTIFY_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class NotifySettings(BaseServiceSettings):
    """Shared connections plus NOTIFY_GRPC_HOST, NOTIFY_GRPC_PORT, NOTIFY_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    grpc_port: Port = 50054
