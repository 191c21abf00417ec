"""Kafka event store, MongoDB read models and Vault Transit encryption for patient data."""
