"""The read_side section: read-your-writes against raw Kafka, the orders projection against raw
getmany + bulk_write, and each service's idle memory."""

from __future__ import annotations

from clinical_testing.endpoints import ServerEndpoints

from bench.kafka_raw import measure_kafka_latency
from bench.load import percentile_ms
from bench.options import Options, progress
from bench.projection_raw import ProjectionRun, measure_projection
from bench.read_your_writes import ReadYourWritesRun, measure_read_your_writes
from bench.report import Figure
from bench.rss import measure_idle_rss

# Quick mode: enough to see every figure computed, small enough for CI (well under a minute).
_QUICK = {"calls": 20, "seconds": 0.5, "events": 500, "prefill": 0, "burst": 200, "idle": 1.0}
_FULL = {"calls": 300, "seconds": 5.0, "events": 20_000, "prefill": 100_000, "burst": 5_000,
         "idle": 10.0}  # fmt: skip


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    size = _QUICK if options.quick else _FULL
    calls, seconds = int(size["calls"]), size["seconds"]
    progress(f"read_side: {calls} PlaceOrder -> GetOrder(min_version), then max and half load")
    reads = await measure_read_your_writes(servers, calls=calls, seconds=seconds)
    progress("read_side: raw Kafka producer to read_committed consumer, one in flight")
    kafka = await measure_kafka_latency(servers.kafka_bootstrap_servers, messages=calls)
    events, prefill = int(size["events"]), int(size["prefill"])
    progress(f"read_side: orders projection vs raw, {events} events over {prefill} orders")
    projection = await measure_projection(
        servers, events=events, prefill=prefill, burst=int(size["burst"])
    )
    progress("read_side: every service as a process, idle")
    rss = await measure_idle_rss(servers, idle_s=size["idle"])
    return [
        *_read_figures(reads, kafka),
        *_projection_figures(projection),
        *_rss_figures(rss),
    ]


def _read_figures(reads: ReadYourWritesRun, kafka_s: list[float]) -> list[Figure]:
    p99 = percentile_ms(reads.one_in_flight_s, 99)
    kafka_p99 = percentile_ms(kafka_s, 99)
    about = "PlaceOrder answered -> GetOrder(min_version) answered"
    return [
        Figure("read_your_writes_p50_ms", percentile_ms(reads.one_in_flight_s, 50), "ms", 2,
               f"{about}, one in flight"),
        Figure("read_your_writes_p99_ms", p99, "ms", 2, "its 99th pct"),
        Figure("read_side_kafka_e2e_p99_ms", kafka_p99, "ms", 2,
               "raw producer -> read_committed consumer, one in flight, this run"),
        Figure("read_your_writes_vs_kafka_p99", p99 / kafka_p99, "ratio", 1,
               "read_your_writes_p99_ms / read_side_kafka_e2e_p99_ms (target <= 3)"),
        Figure("read_your_writes_max_per_s", reads.max_per_s, "/s", 0,
               "place-then-read loops per second, 16 in flight (closed loop)"),
        Figure("read_your_writes_p50_ms_at_half_load", percentile_ms(reads.at_offered_s, 50),
               "ms", 2, f"{about}, open loop at {reads.offered_per_s:.0f}/s (half the max)"),
        Figure("read_your_writes_p99_ms_at_half_load", percentile_ms(reads.at_offered_s, 99),
               "ms", 2, "its 99th pct"),
    ]  # fmt: skip


def _projection_figures(run: ProjectionRun) -> list[Figure]:
    return [
        Figure("projection_eps", run.projection_eps, "events/s", 0,
               f"orders projection, {run.events} OrderPlaced over {run.prefilled} orders"),
        Figure("projection_raw_eps", run.raw_eps, "events/s", 0,
               "raw getmany + bulk_write of the same documents"),
        Figure("projection_vs_raw", run.projection_eps / run.raw_eps, "ratio", 2,
               "projection_eps / projection_raw_eps (target >= 0.6)"),
        Figure("projection_lag_after_burst_s", run.lag_after_burst_s, "s", 2,
               f"a burst of {run.burst} events on the live runner: last send -> all applied"),
        Figure("projection_scanning_queries", run.scanning_queries, "of 3", 0,
               "orders read-model query shapes whose explain shows a table scan (target 0)"),
    ]  # fmt: skip


def _rss_figures(rss: dict[str, float]) -> list[Figure]:
    return [
        Figure("idle_rss_mb", max(rss.values()), "MiB", 0,
               "the largest idle resident set of any service (target <= 150 each)"),
        *(
            Figure(f"idle_rss_mb_{service}", mib, "MiB", 0,
                   f"python -m {service}, serving, idle")
            for service, mib in rss.items()
        ),
    ]  # fmt: skip
