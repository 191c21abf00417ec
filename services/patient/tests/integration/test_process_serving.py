"""``python -m patient`` against the real servers: serves health, exits 0 on SIGTERM."""

from pathlib import Path

import pytest

from clinical_platform.service_process import ServiceProcess
from clinical_platform.testing.endpoints import ServerEndpoints
from clinical_platform.testing.plugin import unique_name

pytestmark = pytest.mark.integration

GRACE_SECONDS = 5


def test_reports_serving_then_exits_zero_within_grace_on_sigterm(
    servers: ServerEndpoints, tmp_path: Path
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "MONGODB_URL": servers.mongodb_url,
        "PATIENT_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
        "PATIENT_STATE_DIR": str(tmp_path / "state"),
        "PATIENT_MONGODB_DATABASE": unique_name("test_"),
    }
    with ServiceProcess("patient", port_variable="PATIENT_GRPC_PORT", env=env) as service:
        service.wait_until_serving(timeout=60)
        assert service.terminate(within=GRACE_SECONDS + 5) == 0
