"""The Kafka the benchmarks run against: the one named by env vars, else the native servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clinical_testing.endpoints import ServerEndpoints, endpoints_from_env
from clinical_testing.native import NativeServers


@contextmanager
def running_servers(repo_root: Path) -> Iterator[ServerEndpoints]:
    """Servers named by the four env vars win; otherwise start the native ones if needed.

    Only servers started here are stopped afterwards, as the test session does.
    """
    existing = endpoints_from_env()
    if existing is not None:
        yield existing
        return
    native = NativeServers(repo_root)
    try:
        servers = native.start()
        # Connections built by hand from the bootstrap servers read these, as settings do.
        os.environ.update(servers.kafka_security)
        yield servers
    finally:
        native.stop()
