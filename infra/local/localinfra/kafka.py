"""Apache Kafka 4.x in KRaft mode: one node that is both broker and controller."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import struct
import subprocess
import uuid
from pathlib import Path

from . import builds, kafka_access
from .config import HOST, InfraConfig
from .kafka_access import KafkaAccess
from .prereqs import require
from .processes import ManagedProcess, already_running, require_free_port

NAME = "kafka"


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=str(config.server_dir(NAME)))


def _properties(config: InfraConfig, log_dir: Path, access: KafkaAccess) -> str:
    listeners = (
        f"SASL_SSL://{HOST}:{config.kafka_port},CONTROLLER://{HOST}:{config.kafka_controller_port}"
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{config.kafka_controller_port}",
            f"listeners={listeners}",
            f"advertised.listeners=SASL_SSL://{HOST}:{config.kafka_port}",
            "controller.listener.names=CONTROLLER",
            *kafka_access.broker_properties(access),
            f"log.dirs={log_dir}",
            # One node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Topics are created on purpose, with explicit configs, by the services.
            "auto.create.topics.enable=false",
            "unclean.leader.election.enable=false",
            "",
        ]
    )


def _java_argv(config: InfraConfig, libs: Path, main_class: str, *args: str) -> list[str]:
    return [
        require("java"),
        "-Xms256m",
        f"-Xmx{config.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={builds.RECIPES / 'kafka' / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def install(config: InfraConfig) -> Path:
    return builds.kafka_libs(config)


def access(config: InfraConfig) -> KafkaAccess:
    """The broker's CA, certificate and principals' passwords (made on first use)."""
    return kafka_access.prepare(config.server_dir(NAME), config.kafka_bootstrap_servers)


def start(config: InfraConfig) -> bool:
    """Start the broker unless it runs; format its storage the first time. True if started."""
    proc = process(config)
    security = access(config)
    ready = lambda: api_versions_ok(config.kafka_port, security.ca_file)  # noqa: E731
    if already_running(proc, ready, config.start_timeout, config.kafka_port, "CLINICAL_KAFKA_PORT"):
        kafka_access.apply(security, install(config))
        return False
    require_free_port(HOST, config.kafka_controller_port, "CLINICAL_KAFKA_CONTROLLER_PORT")
    libs = install(config)
    state = config.server_dir(NAME)
    log_dir = state / "data"
    _forget_plaintext_log(state, log_dir)
    properties = state / "server.properties"
    properties.write_text(_properties(config, log_dir, security))
    properties.chmod(0o600)  # it holds the broker's own password
    if not (log_dir / "meta.properties").exists():
        cluster_id = _cluster_id(state)
        _run_storage_format(config, libs, properties, cluster_id, security)
        (state / SECURED_MARKER).touch()
    proc.start(_java_argv(config, libs, "kafka.Kafka", str(properties)), os.environ, cwd=state)
    proc.wait_until(ready, config.start_timeout, "ready")
    kafka_access.apply(security, libs)
    return True


# A log formatted before the broker had users cannot gain its admin user afterwards (SCRAM
# users of a KRaft cluster come from the format, or from an admin who can already log in).
SECURED_MARKER = "secured"


def _forget_plaintext_log(state: Path, log_dir: Path) -> None:
    if log_dir.exists() and not (state / SECURED_MARKER).exists():
        print("kafka: the local log predates TLS and SASL; starting it afresh")
        shutil.rmtree(log_dir)


def _cluster_id(state: Path) -> str:
    path = state / "cluster-id"
    if not path.exists():
        path.write_text(new_cluster_id() + "\n")
    return path.read_text().strip()


def new_cluster_id() -> str:
    """16 random bytes in URL-safe base64 without padding, as Kafka makes them.

    Never one that starts with "-": the storage tool would read it as an option (one fresh
    state in 64 failed to format that way). Kafka's own generator skips those too.
    """
    while True:
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not raw.startswith("-"):
            return raw


def _run_storage_format(
    config: InfraConfig, libs: Path, properties: Path, cluster_id: str, security: KafkaAccess
) -> None:
    argv = _java_argv(
        config, libs, "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(properties), *kafka_access.bootstrap_scram_argument(security),
    )  # fmt: skip
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-2000:]
        raise builds.BuildError(f"kafka storage format failed: {output}")


def api_versions_ok(port: int, ca_file: Path) -> bool:
    """True when a Kafka broker answers an ApiVersions request over TLS at 127.0.0.1:port
    (a SASL listener answers ApiVersions before authentication)."""
    client_id = b"localinfra"
    # ApiVersions v0: api_key=18, api_version=0, correlation_id, client_id (int16-length string).
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        tls = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection((HOST, port), timeout=1.0) as raw,
            tls.wrap_socket(raw, server_hostname=HOST) as sock,
        ):
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 10)
    except OSError:
        return False
    if header is None:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exactly(sock: ssl.SSLSocket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks
