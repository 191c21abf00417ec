"""Configuration of the gateway service; its own variables start with GATEWAY_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class GatewaySettings(BaseServiceSettings):
    """Shared connections plus GATEWAY_GRPC_HOST, GATEWAY_GRPC_PORT, GATEWAY_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    grpc_port: Port = 18050
