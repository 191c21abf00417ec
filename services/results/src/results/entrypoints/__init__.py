"""The results gRPC servicer and the Kafka projections that feed its read models."""
