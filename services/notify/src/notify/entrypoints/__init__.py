"""The notify gRPC servicer and the Kafka consumers that trigger notifications."""
