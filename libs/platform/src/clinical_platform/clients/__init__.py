"""Factories for the Kafka, MongoDB and Vault clients; building one never connects."""
