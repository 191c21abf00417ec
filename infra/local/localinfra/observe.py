"""python3 -m localinfra.observe {install,up,down,status} [prometheus|zipkin]: the local
observability stack, apart from the servers the services need (``make infra-up`` leaves it
out; ``make run`` starts it unless NO_OBSERVE=1)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from . import prometheus, zipkin
from .builds import BuildError
from .config import ConfigError, InfraConfig
from .prereqs import MissingPrerequisiteError
from .processes import StartupError
from .servers import Server

SERVERS = (
    Server(
        "prometheus", prometheus.address, prometheus.process, prometheus.install, prometheus.start
    ),
    Server("zipkin", zipkin.address, zipkin.process, zipkin.install, zipkin.start),
)


def metrics_env(service: str) -> dict[str, str]:
    """The variable that opens ``service``'s /metrics endpoint on the port Prometheus scrapes."""
    port = prometheus.METRICS_PORTS.get(service)
    return {} if port is None else {f"{service.upper()}_METRICS_PORT": str(port)}


@dataclass
class LocalStack:
    """The stack as ``make run`` uses it: what it started, and what the services need to know."""

    config: InfraConfig
    started: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start Prometheus and Zipkin unless running; on failure say why and run without."""
        try:
            for server in SERVERS:
                if server.start(self.config):
                    self.started.append(server.name)
        except (MissingPrerequisiteError, BuildError, StartupError) as error:
            print(f"observability stack not started ({error}); NO_OBSERVE=1 skips it", flush=True)
            return
        self.env = {
            "OTEL_TRACES_EXPORTER": "zipkin",
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT": zipkin.spans_endpoint(),
        }
        prometheus_url, zipkin_url = prometheus.address(self.config), zipkin.address(self.config)
        self.urls = [
            f"  prometheus {prometheus_url}/consoles/clinical.html, alerts {prometheus_url}/alerts",
            f"  zipkin     {zipkin_url}/zipkin/",
        ]

    def stop(self) -> None:
        """Stop what `start` started (a stack that was already running keeps running)."""
        for server in reversed(SERVERS):
            if server.name in self.started:
                server.process(self.config).stop()


def _run(command: str, config: InfraConfig, servers: list[Server]) -> int:
    status = 0
    for server in servers:
        if command == "install":
            server.install(config)
        elif command == "up":
            state = "started" if server.start(config) else "already running"
            print(f"{server.name:10} {state:16} {server.address(config)}")
        elif command == "down":
            stopped = server.process(config).stop()
            print(f"{server.name:10} {'stopped' if stopped else 'not running'}")
        else:
            pid = server.process(config).pid()
            status |= 0 if pid else 3
            state = f"running (pid {pid})" if pid else "stopped"
            print(f"{server.name:10} {state:22} {server.address(config)}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localinfra.observe", description=__doc__)
    parser.add_argument("command", choices=["install", "up", "down", "status"])
    parser.add_argument("names", nargs="*", help="prometheus, zipkin; default both")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {s.name for s in SERVERS}
    if unknown:
        parser.error(f"unknown server(s) {sorted(unknown)}; choose from prometheus, zipkin")
    servers = [s for s in SERVERS if not args.names or s.name in args.names]
    try:
        return _run(args.command, InfraConfig.from_env(), servers)
    except (MissingPrerequisiteError, ConfigError, BuildError, StartupError) as error:
        print(f"localinfra: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
