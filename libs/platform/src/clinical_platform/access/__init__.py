"""Read-access audit: every read of patient data, and every refusal, as an access record.

A service records each access through `clinical_platform.access.log.AccessAuditLog` before the
RPC answers: a durable local insert into an SQLite outbox. A background publisher sends the
records to ``clinical.audit.access.v1`` (key: the patient id) and removes them once Kafka has
acknowledged them, so a record survives a crash of the process after the answer; delivery is at
least once and consumers deduplicate by ``record_id``. docs/security.md ("Read-access audit")
explains the design.

Import from the modules (``access.log``, ``access.records``): this package imports nothing, so
`clinical_platform.grpc_auth` can use `access.records` without an import cycle.
"""
