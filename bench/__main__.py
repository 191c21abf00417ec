"""``python -m bench``: every figure in one run, against one broker, on this machine.

Each section is a module with ``async def run_section(options, servers) -> list[Figure]``,
registered in `SECTIONS` below; ``--only NAME`` runs one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from clinical_testing.endpoints import ServerEndpoints

from bench import (
    append_section,
    fhir_section,
    gateway_section,
    notify_section,
    read_side_section,
    register_section,
    telemetry_section,
)
from bench.load import Phase
from bench.options import Options, progress
from bench.report import Figure, machine_line, render
from bench.servers import running_servers

REPO_ROOT = Path(__file__).resolve().parent.parent
Section = Callable[[Options, ServerEndpoints], Awaitable[list[Figure]]]
SECTIONS: dict[str, Section] = {
    "append": append_section.run_section,
    "notify": notify_section.run_section,
    "register": register_section.run_section,
    "read_side": read_side_section.run_section,
    "gateway": gateway_section.run_section,
    "telemetry": telemetry_section.run_section,
    "fhir": fhir_section.run_section,
}


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The platform's figures next to their baselines, measured in one run "
        "(see bench/README.md).",
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
        help="afterwards, profile one more append phase with cProfile (top functions printed, "
        "raw stats in bench/results/append.prof)",
    )
    parser.add_argument(
        "--notify-orders",
        type=int,
        default=200,
        help="orders per notify run (one in flight, back to back, at half the maximum: 3 runs), "
        "and messages for each of its two floor runs (default 200)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small data sets and short phases: checks that every section runs (CI); the "
        "figures are not the ones to quote",
    )
    parser.add_argument(
        "--only", choices=sorted(SECTIONS), action="append", help="run this section (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be positive and --concurrency at least 1")
    if args.notify_orders < 2:
        parser.error("--notify-orders must be at least 2")
    seconds = min(args.seconds, 1.0) if args.quick else args.seconds
    notify_orders = min(args.notify_orders, 20) if args.quick else args.notify_orders
    return Options(
        Phase(args.concurrency, seconds, min(1.0, seconds / 2)),
        profile=args.profile,
        notify_orders=notify_orders,
        quick=args.quick,
        sections=tuple(args.only or SECTIONS),
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    machine = machine_line()
    progress("bringing up the servers")
    with running_servers(REPO_ROOT) as servers:
        figures = asyncio.run(_measure(options, servers))
        bootstrap = servers.kafka_bootstrap_servers
    print(machine)
    phase = options.phase
    print(
        f"run: concurrency={phase.concurrency} seconds={phase.seconds:g} "
        f"notify_orders={options.notify_orders} quick={options.quick} broker={bootstrap}"
    )
    print(render(figures))


async def _measure(options: Options, servers: ServerEndpoints) -> list[Figure]:
    figures: list[Figure] = []
    for name in options.sections:
        figures += await SECTIONS[name](options, servers)
    return figures


if __name__ == "__main__":
    main()
