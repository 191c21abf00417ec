"""The orders service as a process: bad settings stop start-up before anything connects.

That it serves health and stops on SIGTERM needs Kafka and MongoDB (the event store starts
before serving): tests/integration/test_process_serving.py.
"""

import pytest
from clinical_testing.service_process import run_until_exit

pytestmark = pytest.mark.unit


def test_malformed_port_stops_start_up_with_one_line_naming_the_variable() -> None:
    exited = run_until_exit("orders", env={"ORDERS_GRPC_PORT": "not-a-port"})
    assert exited.returncode == 2
    assert exited.stderr.count("\n") == 1
    assert exited.stderr.startswith("invalid settings: ORDERS_GRPC_PORT: ")
