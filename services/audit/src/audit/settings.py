"""Configuration of the audit service; its own variables start with AUDIT_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.settings import BaseServiceSettings, Port


class AuditSettings(BaseServiceSettings):
    """Shared connections plus AUDIT_GRPC_HOST, AUDIT_GRPC_PORT, AUDIT_GRPC_REFLECTION, ..."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_")

    grpc_port: Port = 50055
