"""The audit service as a process: serves health, stops on SIGTERM, rejects bad settings.

It needs no servers to start: the projections and the access-record publisher keep retrying in
the background, and health says NOT_SERVING (Vault unreachable) rather than lie. The servers
here are unreachable ports, so nothing real is touched.
"""

from pathlib import Path

import pytest
from clinical_testing.service_process import ServiceProcess, free_tcp_port, run_until_exit
from grpc_health.v1 import health_pb2

pytestmark = pytest.mark.unit

GRACE_SECONDS = 5


def _unreachable_servers(state_dir: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_tcp_port()}",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "MONGODB_URL": f"mongodb://127.0.0.1:{free_tcp_port()}/",
        "VAULT_ADDR": f"http://127.0.0.1:{free_tcp_port()}",
        "VAULT_TOKEN": "unused",
        "AUDIT_STATE_DIR": str(state_dir),
    }


async def test_reports_not_serving_without_its_servers_then_exits_zero_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {"AUDIT_GRPC_GRACE_SECONDS": str(GRACE_SECONDS), **_unreachable_servers(tmp_path)}
    with ServiceProcess.on_free_port("audit", port_variable="AUDIT_GRPC_PORT", env=env) as service:
        await service.wait_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await service.terminate(GRACE_SECONDS) == 0


def test_malformed_port_stops_start_up_with_one_line_naming_the_variable() -> None:
    exited = run_until_exit("audit", env={"AUDIT_GRPC_PORT": "not-a-port"})
    assert exited.returncode == 2
    assert exited.stderr.count("\n") == 1
    assert exited.stderr.startswith("invalid settings: AUDIT_GRPC_PORT: ")
