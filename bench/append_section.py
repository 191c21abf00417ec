"""The append section: the append path against an empty gRPC handler and raw Kafka, catch-up."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

from clinical_testing.endpoints import ServerEndpoints

from bench.append_path import AppendRun, bench_store_config, measure_append
from bench.catch_up import SEEDED_EVENTS, SEEDED_EVENTS_QUICK, CatchUpRun, measure_catch_up
from bench.grpc_floor import measure_grpc_floor
from bench.hotspots import profile_append
from bench.kafka_raw import KafkaRun, measure_kafka
from bench.load import LoadResult
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import delete_topics
from clinical_platform.eventlog.topics import events_topic

PROFILE_DUMP = Path(__file__).resolve().parent / "results" / "append.prof"


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    """gRPC floor, append path, catch-up and raw Kafka rates, in one run."""
    bootstrap = servers.kafka_bootstrap_servers
    phase = options.phase
    progress("gRPC floor: an empty handler")
    floor = await measure_grpc_floor(phase)
    service = f"bench-{uuid4().hex[:12]}"
    with TemporaryDirectory(prefix="bench-state-") as state_dir:
        config = bench_store_config(service, bootstrap, Path(state_dir))
        try:
            progress("append path: counter commands through the event store")
            append = await measure_append(config, phase)
            seeded = SEEDED_EVENTS_QUICK if options.quick else SEEDED_EVENTS
            progress(f"catch-up: {seeded} more events, then a new event store rebuilds them all")
            catch_up = await measure_catch_up(config, append.counter_ids, seeded_events=seeded)
            if options.profile:
                progress("profiling one more append phase (not part of the figures)")
                print(await profile_append(config, phase, dump=PROFILE_DUMP))
        finally:
            await delete_topics(bootstrap, [events_topic(service)])
    progress("raw Kafka producer")
    kafka = await measure_kafka(bootstrap, seconds=phase.seconds)
    return _figures(floor, append, catch_up, kafka)


_LOOP_CPU = "event loop thread's CPU time per call"
_MACHINE_BUSY = "all cores, any process: busy time / total"


def _figures(
    floor: LoadResult, append: AppendRun, catch_up: CatchUpRun, kafka: KafkaRun
) -> list[Figure]:
    appended = append.load
    failed = sum(appended.failures.values())
    return [
        Figure("grpc_floor_rps", floor.answered_per_s, "req/s", 0, "empty unary handler"),
        Figure("grpc_floor_p50_ms", floor.percentile_ms(50), "ms", 2, "its latency, median"),
        Figure("grpc_floor_p99_ms", floor.percentile_ms(99), "ms", 2, "its latency, 99th pct"),
        Figure("grpc_floor_cpu_ms", floor.loop_cpu_ms_per_call, "ms", 3, _LOOP_CPU),
        Figure("grpc_floor_machine_busy", floor.machine_busy, "share", 2, _MACHINE_BUSY),
        Figure("append_rps", appended.answered_per_s, "req/s", 0, "counter command, full path"),
        Figure("append_p50_ms", appended.percentile_ms(50), "ms", 2, "its latency, median"),
        Figure("append_p99_ms", appended.percentile_ms(99), "ms", 2, "its latency, 99th pct"),
        Figure("append_failures", failed, "calls", 0, _failures_note(appended)),
        Figure("append_cpu_ms", appended.loop_cpu_ms_per_call, "ms", 3, _LOOP_CPU),
        Figure("append_machine_busy", appended.machine_busy, "share", 2, _MACHINE_BUSY),
        Figure(
            "append_events_per_commit",
            catch_up.events_per_commit,
            "events",
            1,
            "per writer transaction (group commit)",
        ),
        Figure(
            "append_vs_grpc_floor",
            appended.answered_per_s / floor.answered_per_s,
            "ratio",
            3,
            "append_rps / grpc_floor_rps (target >= 0.5)",
        ),
        Figure("kafka_send_and_wait_mps", kafka.send_and_wait_per_s, "msg/s", 0, "one at a time"),
        Figure("kafka_batched_send_mps", kafka.batched_per_s, "msg/s", 0, "1000 in flight"),
        Figure("kafka_txn_per_s", kafka.transactions_per_s, "txn/s", 0, "1 msg per transaction"),
        Figure(
            "catch_up_eps",
            catch_up.events_per_s,
            "events/s",
            0,
            "empty state dir (target >= 20000)",
        ),
        Figure("catch_up_events", catch_up.events, "events", 0, "events rebuilt from the topic"),
        Figure("catch_up_s", catch_up.empty_start_s, "s", 2, "start() with empty state"),
        Figure(
            "start_up_to_date_s",
            catch_up.up_to_date_start_s,
            "s",
            2,
            "start() with up-to-date state",
        ),
    ]


def _failures_note(load: LoadResult) -> str:
    by_code = ", ".join(f"{code} {count}" for code, count in load.failures.most_common())
    return f"failed calls ({by_code})" if by_code else "failed calls"
