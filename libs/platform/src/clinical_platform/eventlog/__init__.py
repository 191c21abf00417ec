"""The event log: Kafka as the system of record, one writer per partition.

Read docs/architecture.md ("The event log") for the design: partition ownership, transactional
fencing, the local state store, group commit, idempotent commands and catch-up.
"""
