"""The gateway service as a process: serves health, stops on SIGTERM, rejects bad settings."""

from pathlib import Path

import pytest
from clinical_testing.service_process import ServiceProcess, free_tcp_port, run_until_exit

pytestmark = pytest.mark.unit

GRACE_SECONDS = 5


async def test_reports_serving_then_exits_zero_within_grace_on_sigterm(tmp_path: Path) -> None:
    grace = {
        "GATEWAY_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
        "GATEWAY_HTTP_PORT": str(free_tcp_port()),
        "GATEWAY_SIGNING_KEYS_FILE": str(tmp_path / "keys.pem"),
        "GATEWAY_ACCESS_TRAIL": "false",  # a unit test: no Kafka
    }
    with ServiceProcess.on_free_port(
        "gateway", port_variable="GATEWAY_GRPC_PORT", env=grace
    ) as service:
        await service.wait_serving()
        assert await service.terminate(GRACE_SECONDS) == 0


def test_malformed_port_stops_start_up_with_one_line_naming_the_variable() -> None:
    exited = run_until_exit("gateway", env={"GATEWAY_GRPC_PORT": "not-a-port"})
    assert exited.returncode == 2
    assert exited.stderr.count("\n") == 1
    assert exited.stderr.startswith("invalid settings: GATEWAY_GRPC_PORT: ")
