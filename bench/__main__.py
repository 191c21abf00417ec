"""``python -m bench``: every figure in one run, against one broker, on this machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

from clinical_testing.endpoints import ServerEndpoints

from bench.append_path import AppendRun, bench_store_config, measure_append
from bench.catch_up import CatchUpRun, measure_catch_up
from bench.grpc_floor import measure_grpc_floor
from bench.hotspots import profile_append
from bench.kafka_raw import KafkaRun, measure_kafka, measure_kafka_latency
from bench.load import LoadResult, Phase, percentile_ms
from bench.notify_latency import ORDERING_GRACE_S, POLL_INTERVAL_S, NotifyRun, measure_notify
from bench.report import Figure, machine_line, render
from bench.servers import running_servers
from bench.topics import delete_topics
from clinical_platform.eventlog.topics import events_topic

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE_DUMP = REPO_ROOT / "bench" / "results" / "append.prof"
SECTIONS = ("append", "notify")


@dataclass(frozen=True)
class Options:
    phase: Phase
    profile: bool
    notify_orders: int
    sections: tuple[str, ...]


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Append path vs. an empty gRPC handler and raw Kafka, and signed order to "
        "webhook vs. raw Kafka producer to consumer, measured in one run (see bench/README.md).",
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="length of each measured phase (default 3)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent gRPC callers (default 64)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"afterwards, profile one more append phase with cProfile (top functions printed, "
        f"raw stats in {PROFILE_DUMP.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--notify-orders",
        type=int,
        default=200,
        help="orders signed for the notify latency, and messages for its Kafka baseline "
        "(default 200)",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        help="run one section: append (gRPC floor, append path, catch-up, raw Kafka rates) or "
        "notify (webhook latency and its Kafka baseline); default both",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be positive and --concurrency at least 1")
    if args.notify_orders < 2:
        parser.error("--notify-orders must be at least 2")
    warmup_s = min(1.0, args.seconds / 2)
    return Options(
        Phase(args.concurrency, args.seconds, warmup_s),
        profile=args.profile,
        notify_orders=args.notify_orders,
        sections=(args.only,) if args.only else SECTIONS,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    machine = machine_line()
    _progress("bringing up the servers")
    with running_servers(REPO_ROOT) as servers:
        bootstrap = servers.kafka_bootstrap_servers
        figures, hotspots = asyncio.run(_measure(options, servers))
    if hotspots is not None:
        print(hotspots)
    print(machine)
    phase = options.phase
    print(
        f"run: concurrency={phase.concurrency} seconds={phase.seconds:g} "
        f"notify_orders={options.notify_orders} broker={bootstrap}"
    )
    print(render(figures))


async def _measure(options: Options, servers: ServerEndpoints) -> tuple[list[Figure], str | None]:
    figures: list[Figure] = []
    hotspots = None
    if "append" in options.sections:
        figures, hotspots = await _measure_append(options, servers.kafka_bootstrap_servers)
    if "notify" in options.sections:
        figures += await _measure_notify(options, servers)
    return figures, hotspots


async def _measure_append(options: Options, bootstrap: str) -> tuple[list[Figure], str | None]:
    phase = options.phase
    _progress("gRPC floor: an empty handler")
    floor = await measure_grpc_floor(phase)
    service = f"bench-{uuid4().hex[:12]}"
    hotspots = None
    with TemporaryDirectory(prefix="bench-state-") as state_dir:
        config = bench_store_config(service, bootstrap, Path(state_dir))
        try:
            _progress("append path: counter commands through the event store")
            append = await measure_append(config, phase)
            _progress("catch-up: new event stores on the appended topic")
            catch_up = await measure_catch_up(config, append.counter_ids)
            if options.profile:
                _progress("profiling one more append phase (not part of the figures)")
                hotspots = await profile_append(config, phase, dump=PROFILE_DUMP)
        finally:
            await delete_topics(bootstrap, [events_topic(service)])
    _progress("raw Kafka producer")
    kafka = await measure_kafka(bootstrap, seconds=phase.seconds)
    return _figures(floor, append, catch_up, kafka), hotspots


async def _measure_notify(options: Options, servers: ServerEndpoints) -> list[Figure]:
    _progress(f"notify: {options.notify_orders} signed orders to a webhook")
    notify = await measure_notify(servers, orders=options.notify_orders)
    _progress("raw Kafka producer to consumer, one message in flight")
    kafka = await measure_kafka_latency(
        servers.kafka_bootstrap_servers, messages=options.notify_orders
    )
    return _notify_figures(notify, kafka)


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
        Figure("catch_up_eps", catch_up.events_per_s, "events/s", 0, "empty state dir"),
        Figure("catch_up_events", catch_up.events, "events", 0, "events on the topic"),
        Figure("catch_up_s", catch_up.empty_start_s, "s", 2, "start() with empty state"),
        Figure(
            "start_up_to_date_s",
            catch_up.up_to_date_start_s,
            "s",
            2,
            "start() with up-to-date state",
        ),
    ]


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


def _failures_note(load: LoadResult) -> str:
    by_code = ", ".join(f"{code} {count}" for code, count in load.failures.most_common())
    return f"failed calls ({by_code})" if by_code else "failed calls"


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
