"""Configuration of the results service; its own variables start with RESULTS_."""

from pydantic_settings import SettingsConfigDict

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.settings import Port, RecordServiceSettings


class ResultsSettings(RecordServiceSettings):
    """Shared connections plus RESULTS_GRPC_PORT, RESULTS_MONGODB_DATABASE, ..."""

    model_config = SettingsConfigDict(env_prefix="RESULTS_")

    grpc_port: Port = 18053
    # Decides the event topic (clinical.<name>.events.v1) and prefixes the consumer groups.
    # Only an isolated copy of the service (a test) has a reason to change it.
    event_log_name: str = "results"
    # The results read models' database (results and the service's view of orders).
    mongodb_database: str = "results"
    # Where the order states come from (the orders service's event topic).
    orders_events_topic: str = events_topic("orders")
