"""What SREs see of a service: Prometheus metrics and the trace of each clinical action.

- `metrics`: every metric the platform exports, in one registry, named by Prometheus
  conventions with bounded labels (never an id, a URL or a value from a request);
- `endpoint`: the per-service ``/metrics`` endpoint (``<SVC>_METRICS_PORT``, loopback by default);
- `rpc`: RED metrics per gRPC method (a server interceptor);
- `messaging`: the Kafka hop of a trace, the producer span whose ``traceparent`` rides in the
  record headers, and the consumer spans (a child of it per record, links for a batch);
- `consumer_lag`: consumer lag per group and partition, projection lag in seconds;
- `webhooks`: the webhook POST as a client span under the notify span that matched the event.

Span names and attributes follow OpenTelemetry's semantic conventions and carry no PHI: topic,
partition, offset, group, method names and status codes only (docs/observability.md).
"""
