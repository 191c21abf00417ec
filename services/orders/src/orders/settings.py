"""Configuration of the orders service; its own variables start with ORDERS_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class OrdersSettings(BaseServiceSettings):
    """Shared connections plus ORDERS_GRPC_HOST, ORDERS_GRPC_PORT, ORDERS_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    grpc_port: Port = 50052
