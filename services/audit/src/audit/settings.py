"""Configuration of the audit service; its own variables start with AUDIT_."""

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC
from clinical_platform.settings import Port, RecordServiceSettings

# Every service's event topic, clinical.<service>.events.v1 (not their .dlq copies). Digits are
# allowed in the service name: a topic the pattern misses would be a silent gap in the trail.
EVENT_TOPIC_PATTERN = r"^clinical\.[a-z0-9-]+\.events\.v1$"


class AuditSettings(RecordServiceSettings):
    """Shared connections plus AUDIT_GRPC_PORT, AUDIT_MONGODB_DATABASE, ..."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_")

    grpc_port: Port = 18055
    # The audit read model's database.
    mongodb_database: str = "audit"
    # Names the read model's consumer groups (projection.<name>.history, ...). Only an isolated
    # copy of the service (a test) has a reason to change it.
    read_model_name: str = "audit"
    # Which topics are event topics: History reads all of them, Verify accepts only them.
    event_topic_pattern: str = EVENT_TOPIC_PATTERN
    # Where the event partitions' signed checkpoints are (docs/security.md, "Checkpoints").
    checkpoints_topic: str = CHECKPOINTS_TOPIC
    # Partitions verified at once: a verification reads a whole partition into memory.
    concurrent_verifications: Annotated[int, Field(ge=1)] = 2

    @field_validator("event_topic_pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error:
            raise ValueError("is not a regular expression") from None
        return pattern
