"""FerretDB 1.24 on PostgreSQL: the MongoDB wire protocol for the read models."""

from __future__ import annotations

import os

from . import builds, postgresql
from .config import HOST, InfraConfig
from .processes import ManagedProcess, already_running, port_open

NAME = "ferretdb"


def process(config: InfraConfig) -> ManagedProcess:
    # FerretDB keeps no files: the address it listens on (one per machine) identifies it.
    return ManagedProcess(NAME, config.server_dir(NAME), marker=_listen_flag(config))


def _listen_flag(config: InfraConfig) -> str:
    return f"-listen-addr={HOST}:{config.mongo_port}"


def install(config: InfraConfig) -> None:
    builds.go_binary(config, NAME)


def start(config: InfraConfig) -> bool:
    """Start FerretDB unless it runs. True if started."""
    proc = process(config)
    ready = lambda: port_open(HOST, config.mongo_port)  # noqa: E731
    if already_running(proc, ready, config.start_timeout, config.mongo_port, "CLINICAL_MONGO_PORT"):
        return False
    binary = builds.go_binary(config, NAME)
    state = config.server_dir(NAME)
    argv = [
        str(binary),
        _listen_flag(config),
        f"-postgresql-url={postgresql.ferretdb_url(config)}",
        # FerretDB logs failed requests in full at WARN; documents may hold PHI.
        "-log-level=error",
    ]
    proc.start(argv, os.environ, cwd=state)
    proc.wait_until(ready, config.start_timeout, "accepting connections")
    return True
