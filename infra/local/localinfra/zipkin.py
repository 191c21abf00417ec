"""Zipkin's server (the ``exec`` jar, fetched with Maven): the local stack's trace store and UI.

Spans are kept in memory (a restart forgets them): the local stack is for looking at what one
run did. The services send their spans to ``/api/v2/spans`` (OTEL_TRACES_EXPORTER=zipkin).
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from . import builds
from .config import HOST, InfraConfig, _int
from .prereqs import require
from .processes import ManagedProcess, already_running

NAME = "zipkin"
RECIPE = builds.RECIPES / "zipkin"
# The newest spans kept in memory; older ones are dropped first.
MAX_SPANS = 200_000


def port() -> int:
    """Zipkin's port: CLINICAL_ZIPKIN_PORT, default 18411."""
    return _int(os.environ, "CLINICAL_ZIPKIN_PORT", 18411)


def address(config: InfraConfig) -> str:
    return f"http://{HOST}:{port()}"


def spans_endpoint() -> str:
    """Where services POST their spans (Zipkin v2 JSON)."""
    return f"http://{HOST}:{port()}/api/v2/spans"


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=_port_flag())


def _port_flag() -> str:
    return f"--armeria.ports[0].port={port()}"


def install(config: InfraConfig) -> Path:
    """The zipkin-server exec jar, fetched once and cached like the Kafka jars."""
    final = config.cache_dir / f"zipkin-{builds._recipe_hash(RECIPE)}"
    jars = sorted(final.glob("zipkin-server-*-exec.jar")) if final.is_dir() else []
    if jars:
        return jars[-1]
    mvn = require("mvn")
    builds._say("downloading the Zipkin server jar with Maven (first run only, about 80 MB)")
    staging = final.with_name(final.name + f".partial-{os.getpid()}")
    staging.mkdir(parents=True)
    builds._run(
        [
            mvn, "-q", "-B", "-f", str(RECIPE / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
        ],
        cwd=RECIPE, env=dict(os.environ), what="mvn dependency:copy-dependencies (zipkin)",
    )  # fmt: skip
    published = builds._publish(staging, final)
    jars = sorted(published.glob("zipkin-server-*-exec.jar"))
    if not jars:
        raise builds.BuildError(f"no zipkin-server exec jar in {published}")
    return jars[-1]


def ready(config: InfraConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{address(config)}/health", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def start(config: InfraConfig) -> bool:
    """Start Zipkin unless it runs. True if started."""
    proc = process(config)
    is_ready = lambda: ready(config)  # noqa: E731
    if already_running(proc, is_ready, config.start_timeout, port(), "CLINICAL_ZIPKIN_PORT"):
        return False
    jar = install(config)
    argv = [
        require("java"),
        "-Xms64m",
        "-Xmx384m",
        "-XX:+UseSerialGC",
        "-jar",
        str(jar),
        # Loopback only, on our port; Armeria's Spring configuration names ports by index.
        f"--armeria.ports[0].ip={HOST}",
        _port_flag(),
        "--armeria.ports[0].protocols[0]=http",
        "--logging.level.root=WARN",
    ]
    env = {**os.environ, "STORAGE_TYPE": "mem", "MEM_MAX_SPANS": str(MAX_SPANS)}
    proc.start(argv, env, cwd=config.server_dir(NAME))
    proc.wait_until(is_ready, config.start_timeout, "ready")
    return True
