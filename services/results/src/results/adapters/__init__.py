"""Kafka event store and MongoDB read models for results."""
