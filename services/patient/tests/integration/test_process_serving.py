"""``python -m patient`` against the real servers: serves health, exits 0 on SIGTERM."""

from pathlib import Path

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess

pytestmark = pytest.mark.integration

GRACE_SECONDS = 5


async def test_reports_serving_then_exits_zero_within_grace_on_sigterm(
    servers: ServerEndpoints, tmp_path: Path
) -> None:
    env = servers.as_env() | {
        "PATIENT_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
        "PATIENT_STATE_DIR": str(tmp_path / "state"),
        "PATIENT_MONGODB_DATABASE": unique_name("test_"),
    }
    with ServiceProcess.on_free_port(
        "patient", port_variable="PATIENT_GRPC_PORT", env=env
    ) as service:
        await service.wait_serving(within_s=60)
        assert await service.terminate(GRACE_SECONDS + 5) == 0
