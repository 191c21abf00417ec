"""Configuration of the orders service; its own variables start with ORDERS_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.settings import Port, RecordServiceSettings


class OrdersSettings(RecordServiceSettings):
    """Shared connections plus ORDERS_GRPC_PORT, ORDERS_MONGODB_DATABASE, ..."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    grpc_port: Port = 18052
    # Decides the event topic (clinical.<name>.events.v1) and prefixes the consumer groups.
    # Only an isolated copy of the service (a test) has a reason to change it.
    event_log_name: str = "orders"
    mongodb_database: str = "orders"
    # Where ResultPosted events come from (the results service's event topic).
    results_events_topic: str = events_topic("results")
