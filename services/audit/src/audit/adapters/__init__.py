"""The read model (MongoDB projections and queries) and partition verification (Kafka, Vault)."""
