"""Prometheus from Debian's package: scrapes every service's metrics endpoint on 127.0.0.1.

The scrape configuration is generated on every start: one job whose targets are files in its
state folder, ``local.json`` for the services of ``make run`` (the table below) and one per test
that runs services of its own (`register_targets`), each target labelled with its ``service``.
The alerting and recording rules and the console templates are the repo's own
(infra/observability). Debian's package also brings
``promtool``, which checks and unit-tests the rules.

The package's own service is never started: installs run with a ``policy-rc.d`` that forbids
it, so nothing listens on the standard port 9090 or on any address but loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from .config import HOST, REPO_ROOT, InfraConfig, _int
from .prereqs import MissingPrerequisiteError
from .processes import ManagedProcess, already_running

NAME = "prometheus"
OBSERVABILITY = REPO_ROOT / "infra" / "observability"
RULES = OBSERVABILITY / "prometheus" / "rules"
CONSOLES = OBSERVABILITY / "prometheus" / "consoles"
# The metrics endpoint of each service under `make run` (clinical_platform.observability).
METRICS_PORTS = {
    "gateway": 18150,
    "patient": 18151,
    "orders": 18152,
    "results": 18153,
    "notify": 18154,
    "audit": 18155,
}
SCRAPE_INTERVAL = "5s"
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def port() -> int:
    """Prometheus's port: CLINICAL_PROMETHEUS_PORT, default 18090."""
    return _int(os.environ, "CLINICAL_PROMETHEUS_PORT", 18090)


class PrometheusMissingError(MissingPrerequisiteError):
    """Debian's prometheus package is not installed."""


def binary(program: str = "prometheus") -> Path:
    """``prometheus`` or ``promtool`` from Debian's package (or PATH)."""
    found = shutil.which(program)
    if found is None:
        raise PrometheusMissingError(
            f"{program} not found: install Debian's prometheus package (`make run` "
            "installs it when run as root)"
        )
    return Path(found)


def install(config: InfraConfig) -> Path:
    """Install Debian's prometheus package when missing and we may (root with apt-get)."""
    with contextlib.suppress(PrometheusMissingError):
        return binary()
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return binary()  # raises with the hint
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Forbid starting the package's service (it would listen on every address, port 9090);
    # a policy-rc.d of the machine's own is left as it is.
    ours = not _POLICY_RC_D.exists()
    if ours:
        _POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC_D.chmod(0o755)
    try:
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
        ):
            if subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
                raise PrometheusMissingError(
                    f"`{' '.join(argv)}` failed; install prometheus by hand"
                )
    finally:
        if ours:
            _POLICY_RC_D.unlink(missing_ok=True)
    return binary()


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=_listen_flag(config))


def address(config: InfraConfig) -> str:
    return f"http://{HOST}:{port()}"


def _listen_flag(config: InfraConfig) -> str:
    return f"--web.listen-address={HOST}:{port()}"


def scrape_config(targets_dir: Path) -> str:
    """prometheus.yml: one job whose targets are the JSON files in ``targets_dir`` (re-read
    every few seconds, so a test adds its own services' endpoints without a restart). JSON is
    YAML, and needs no YAML library here."""
    document = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "clinical",
                "file_sd_configs": [
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": SCRAPE_INTERVAL}
                ],
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def targets_dir(config: InfraConfig) -> Path:
    path = config.server_dir(NAME) / "targets"
    path.mkdir(exist_ok=True)
    return path


def register_targets(config: InfraConfig, name: str, metrics_ports: dict[str, int]) -> Path:
    """Have Prometheus scrape ``{service: metrics port}`` on 127.0.0.1 (as job ``clinical``,
    label ``service``) until `unregister_targets`. Returns the targets file."""
    groups = [
        {"targets": [f"{HOST}:{port}"], "labels": {"service": service}}
        for service, port in metrics_ports.items()
    ]
    path = targets_dir(config) / f"{name}.json"
    staging = path.with_suffix(".partial")  # not *.json: Prometheus never reads half a file
    staging.write_text(json.dumps(groups, indent=2) + "\n")
    staging.replace(path)
    return path


def unregister_targets(config: InfraConfig, name: str) -> None:
    (targets_dir(config) / f"{name}.json").unlink(missing_ok=True)


def ready(config: InfraConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{address(config)}/-/ready", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def start(config: InfraConfig) -> bool:
    """Start Prometheus unless it runs; regenerate its scrape config first. True if started."""
    proc = process(config)
    is_ready = lambda: ready(config)  # noqa: E731
    if already_running(proc, is_ready, config.start_timeout, port(), "CLINICAL_PROMETHEUS_PORT"):
        return False
    prometheus = install(config)
    state = config.server_dir(NAME)
    configuration = state / "prometheus.yml"
    configuration.write_text(scrape_config(targets_dir(config)))
    register_targets(config, "local", METRICS_PORTS)
    argv = [
        str(prometheus),
        f"--config.file={configuration}",
        _listen_flag(config),
        f"--storage.tsdb.path={state / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.console.templates={CONSOLES}",
        f"--web.console.libraries={CONSOLES}",
        "--log.level=warn",
    ]
    proc.start(argv, os.environ, cwd=state)
    proc.wait_until(is_ready, config.start_timeout, "ready")
    return True
