"""Configuration of the orders service; its own variables start with ORDERS_."""

from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.settings import BaseServiceSettings, Port


class OrdersSettings(BaseServiceSettings):
    """Shared connections plus ORDERS_GRPC_PORT, ORDERS_MONGODB_DATABASE, ..."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    grpc_port: Port = 18052
    # Decides the event topic (clinical.<name>.events.v1) and prefixes the consumer groups.
    # Only an isolated copy of the service (a test) has a reason to change it.
    event_log_name: str = "orders"
    # The orders read model's database.
    mongodb_database: str = "orders"
    # Where ResultPosted events come from (the results service's event topic).
    results_events_topic: str = events_topic("results")
    # Where PatientForgotten comes from (the patient service's event topic).
    patient_events_topic: str = events_topic("patient")
    # The longest a read waits for "at least version N" when the call has no deadline.
    read_wait_max_s: Annotated[float, Field(ge=0)] = 10.0
