"""The notify section: signed order to webhook against raw Kafka producer to consumer."""

from __future__ import annotations

from clinical_testing.endpoints import ServerEndpoints

from bench.kafka_raw import measure_kafka_latency
from bench.load import percentile_ms
from bench.notify_latency import ORDERING_GRACE_S, POLL_INTERVAL_S, NotifyRun, measure_notify
from bench.options import Options, progress
from bench.report import Figure


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    progress(f"notify: {options.notify_orders} signed orders to a webhook")
    notify = await measure_notify(servers, orders=options.notify_orders)
    progress("raw Kafka producer to consumer, one message in flight")
    kafka = await measure_kafka_latency(
        servers.kafka_bootstrap_servers, messages=options.notify_orders
    )
    return _notify_figures(notify, kafka)


def _notify_figures(notify: NotifyRun, kafka_latencies_s: list[float]) -> list[Figure]:
    notify_p50 = percentile_ms(notify.latencies_s, 50)
    kafka_p50 = percentile_ms(kafka_latencies_s, 50)
    return [
        Figure(
            "notify_webhook_p50_ms",
            notify_p50,
            "ms",
            1,
            f"SignOrder answered -> webhook in, one in flight (ordering grace "
            f"{ORDERING_GRACE_S:g} s, poll {POLL_INTERVAL_S:g} s)",
        ),
        Figure(
            "notify_webhook_p99_ms",
            percentile_ms(notify.latencies_s, 99),
            "ms",
            1,
            "its latency, 99th pct",
        ),
        Figure("notify_webhook_count", len(notify.latencies_s), "orders", 0, "webhooks received"),
        Figure(
            "notify_webhook_missing",
            notify.missing,
            "orders",
            0,
            "not measured: no webhook within 10 s (the run stops at the first)",
        ),
        Figure("kafka_e2e_p50_ms", kafka_p50, "ms", 2, "producer -> consumer, one in flight"),
        Figure("kafka_e2e_p99_ms", percentile_ms(kafka_latencies_s, 99), "ms", 2, "its 99th pct"),
        Figure(
            "notify_vs_kafka_p50",
            notify_p50 / kafka_p50,
            "ratio",
            1,
            "notify_webhook_p50_ms / kafka_e2e_p50_ms (lower is better)",
        ),
    ]
