"""Every metric the platform exports, in one registry (docs/observability.md lists them).

Names follow Prometheus conventions: a ``clinical_`` namespace, base units in the name
(``_seconds``, ``_bytes``), ``_total`` on counters. Labels are bounded sets only: a gRPC method
of our protos, a topic, a partition number, a consumer group, an outcome from a fixed list.
Never an id, a URL, a subscription or anything a caller sent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Fast paths (appends, RPCs) from 1 ms; deliveries up to the webhook timeout.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

RPC_REQUESTS = Counter(
    "clinical_rpc_server_requests",
    "gRPC calls handled, by method and status code.",
    ["rpc_service", "rpc_method", "rpc_grpc_status_code"],
    registry=REGISTRY,
)
RPC_DURATION = Histogram(
    "clinical_rpc_server_duration_seconds",
    "Time from a gRPC call's arrival to its answer (streams: to their end).",
    ["rpc_service", "rpc_method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "clinical_http_server_requests",
    "HTTP requests handled, by route template and status class (2xx, 4xx, 5xx).",
    ["http_route", "http_request_method", "http_status_class"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "clinical_http_server_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["http_route", "http_request_method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

APPEND_DURATION = Histogram(
    "clinical_eventlog_append_duration_seconds",
    "Time from an append's arrival at its partition writer to its outcome.",
    ["topic", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
COMMIT_BATCH_EVENTS = Histogram(
    "clinical_eventlog_commit_batch_events",
    "Events written by one group commit (one Kafka transaction).",
    ["topic"],
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
COMMIT_DURATION = Histogram(
    "clinical_eventlog_commit_duration_seconds",
    "Time to send and commit one Kafka transaction of a group commit.",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TRANSACTION_ABORTS = Counter(
    "clinical_eventlog_transaction_aborts",
    "Group commits whose Kafka transaction failed or was aborted (outcome unknown).",
    ["topic"],
    registry=REGISTRY,
)
WRITER_FENCED = Counter(
    "clinical_eventlog_writer_fenced",
    "Partition writers fenced by a newer writer with the same transactional id.",
    ["topic"],
    registry=REGISTRY,
)

DEAD_LETTERS = Counter(
    "clinical_dead_letters",
    "Records set aside as poison (dead-letter topic) by a consumer, by source topic.",
    ["consumer_group", "topic"],
    registry=REGISTRY,
)

WEBHOOK_ATTEMPTS = Counter(
    "clinical_webhook_delivery_attempts",
    "Webhook POSTs, by outcome (delivered, failed).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_DURATION = Histogram(
    "clinical_webhook_delivery_duration_seconds",
    "Time of one webhook POST, by outcome.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "clinical_webhook_delivery_latency_seconds",
    "Time from an event's commit to its webhook's successful delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
    registry=REGISTRY,
)
WEBHOOK_DEAD_LETTERS = Counter(
    "clinical_webhook_dead_letters",
    "Notifications dead-lettered after failing for the whole retry horizon.",
    registry=REGISTRY,
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "clinical_webhook_queue_depth",
    "Notifications numbered but not yet delivered, summed over this replica's webhooks.",
    registry=REGISTRY,
)

VAULT_DURATION = Histogram(
    "clinical_vault_request_duration_seconds",
    "Time of one request to Vault, by operation.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
VAULT_ERRORS = Counter(
    "clinical_vault_request_errors",
    "Vault requests that failed, by operation.",
    ["operation"],
    registry=REGISTRY,
)
DATA_KEY_CACHE = Counter(
    "clinical_data_key_cache_lookups",
    "Lookups of unwrapped patient data keys in memory, by result (hit, miss).",
    ["result"],
    registry=REGISTRY,
)
# clinical_checkpoint_age_seconds is read from the checkpointers at scrape time
# (observability.checkpoints).
ACCESS_AUDIT_OUTBOX_DEPTH = Gauge(
    "clinical_access_audit_outbox_depth",
    "Access records waiting in the outbox to be published to the audit topic.",
    registry=REGISTRY,
)
HEALTH_SERVING = Gauge(
    "clinical_health_serving",
    "1 while a readiness check passes, 0 while it fails and health reports NOT_SERVING.",
    ["check"],
    registry=REGISTRY,
)
BREAK_GLASS_READS = Counter(
    "clinical_break_glass_reads",
    "Reads of patient data under an emergency (break-glass) justification.",
    registry=REGISTRY,
)
