"""`make run` (infra/local/run_platform.py): every service comes up, a clean start logs no ERROR
line, the companion app example hears of a signed order on both channels, and Ctrl-C stops them
all.

run_platform finds the session's local servers running, as `make run` after `make infra-up`
does: it starts none, and gives each service its own Kafka principal and Vault token, so a run
that logs no error line also shows the ACLs and policies grant each service what it needs. It
keeps its service state in a temporary CLINICAL_RUN_STATE_DIR; its access audit topic is new to
the cluster too, so each run starts as a first one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.isolated import SERVER_ENV
from clinical_testing.kafka import delete_topics
from clinical_testing.keycloak import running_keycloak
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import wait_until_serving
from clinical_testing.waiting import eventually
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.patient.v1 import patient_pb2 as patient_pb
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical_platform.devtokens import mint_token
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

Credentials = Callable[[str], dict[str, str]]

# run_platform signs the services' tokens with the checkout's dev key (as `make token` does).
DEV_KEY_DIR = Path(__file__).resolve().parents[2] / ".infra" / "dev-jwt"
GATEWAY_URL = "http://127.0.0.1:18080"
# The fixed ports run_platform gives the services (gateway, patient, orders, results, notify,
# audit).
SERVICE_PORTS = range(18050, 18056)
# And the companion app's webhook, fixed so its saved subscription finds it again.
COMPANION_WEBHOOK_PORT = 18056
# How long a healthy start without traffic is watched for ERROR lines once every service serves.
QUIET_WINDOW_S = 60.0
ERROR_MARKERS = ('"level": "ERROR"', '"level": "CRITICAL"', "Traceback (most recent call last)")


def _taken_ports() -> list[int]:
    taken = []
    for port in [*SERVICE_PORTS, COMPANION_WEBHOOK_PORT]:
        with socket.socket() as sock:
            # As the servers bind: a connection of a previous run in TIME_WAIT is no owner.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def access_topic(servers: ServerEndpoints) -> AsyncIterator[str]:
    """An access audit topic new to the cluster, as on a first start, where the services' ACLs
    let them write it (infra/kafka/acls.toml); deleted after."""
    topic = unique_name("clinical.audit.access.e2e-")
    yield topic
    await delete_topics(servers.kafka_bootstrap_servers, [topic, dead_letter_topic(topic)])


@pytest.fixture
def run_platform(
    service_credentials: Credentials,
    pytestconfig: pytest.Config,
    tmp_path: Path,
    access_topic: str,
    servers: ServerEndpoints,
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """run_platform.py in a process group of its own, as a shell runs a foreground job.

    Without the server variables, as `make run` is started: it asks the local servers (already
    up for this session: `service_credentials` skips otherwise) for each service's credentials.
    """
    if taken := _taken_ports():
        pytest.skip(f"`make run` needs 127.0.0.1:18050-18056; in use: {taken}")
    connection = {*SERVER_ENV, *servers.kafka_security}
    env = {k: v for k, v in os.environ.items() if k not in connection}
    env |= {"CLINICAL_RUN_STATE_DIR": str(tmp_path / "infra" / "state"), "PYTHONUNBUFFERED": "1"}
    env |= {"ACCESS_AUDIT_TOPIC": access_topic}
    # tests/observability starts the Prometheus and Zipkin that make run would (their own).
    env |= {"NO_OBSERVE": "1"}
    log_path = tmp_path / "run_platform.log"
    root = Path(pytestconfig.rootpath)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(root / "infra" / "local" / "run_platform.py")],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield process, log_path
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first, so run_platform stops what it started; then whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _register_patient(key: Ed25519PrivateKey) -> str:
    """A patient registered straight at the patient service (only a registered patient's
    orders are taken): their id."""
    token = mint_token(key, subject="dev-registrar", roles=[Role.REGISTRAR])
    demographics = patient_pb.Demographics(
        name=patient_pb.HumanName(given=["Ada"], family=unique_name("Lovelace-")),
        birth_date="1985-12-10", sex=patient_pb.ADMINISTRATIVE_SEX_FEMALE,
    )  # fmt: skip
    async with grpc.aio.insecure_channel("127.0.0.1:18051") as channel:
        registered = await PatientServiceStub(channel).RegisterPatient(
            patient_pb.RegisterPatientRequest(
                request_id=str(uuid.uuid4()), demographics=demographics
            ),
            metadata=(("authorization", f"Bearer {token}"),), timeout=30,
        )  # fmt: skip
    return str(registered.patient_id)


async def _companion_hears_a_signed_order(log_path: Path) -> None:
    """Wait for the companion's subscription, place an order through the gateway (a Keycloak
    login, exchanged for a token the orders service checks against the gateway's JWKS), sign it
    straight at the orders service, and wait for both channels' lines."""
    await _wait_for_log(log_path, "companion | companion: subscription ")
    key = load_pem_private_key((DEV_KEY_DIR / "private.pem").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    patient_id = await _register_patient(key)
    with running_keycloak() as keycloak:
        login = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.cruds")
    async with httpx.AsyncClient(base_url=GATEWAY_URL, timeout=30) as gateway:
        placed = await gateway.post("/api/v1/orders", headers={"authorization": f"Bearer {login}"},
                                    json={
            "request_id": str(uuid.uuid4()), "patient_id": patient_id,
            "test_code": "2345-7", "priority": "PRIORITY_ROUTINE",
            "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
        })  # fmt: skip
    assert placed.status_code == 200, placed.text
    order_id = str(placed.json()["order_id"])
    token = mint_token(key, subject="dev-signer", roles=[Role.CLINICIAN],
                       privileges=["orders:sign"], mfa=True)  # fmt: skip
    async with grpc.aio.insecure_channel("127.0.0.1:18052") as channel:
        await OrderServiceStub(channel).SignOrder(
            orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id),
            metadata=(("authorization", f"Bearer {token}"),), timeout=30,
        )  # fmt: skip
    for channel_name in ("stream ", "webhook"):
        await _wait_for_log(log_path, f"{channel_name} #1 order.signed order={order_id}")


def _read(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def _wait_for_log(log_path: Path, text: str, within_s: float = 90.0) -> None:
    if not await eventually(lambda: text in _read(log_path), within_s=within_s, interval_s=0.2):
        pytest.fail(f"no {text!r} in the log:\n{_read(log_path)[-4000:]}")


def _error_lines(log_path: Path) -> list[str]:
    return [line for line in _read(log_path).splitlines() if any(m in line for m in ERROR_MARKERS)]


async def _all_serving(process: subprocess.Popen[bytes], log_path: Path) -> None:
    def exited() -> str | None:
        if process.poll() is None:
            return None
        return f"run_platform exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"

    try:
        await asyncio.gather(
            *(wait_until_serving(f"127.0.0.1:{port}", within_s=120, exited=exited)
              for port in SERVICE_PORTS)
        )  # fmt: skip
    except TimeoutError as error:
        pytest.fail(f"{error}:\n{_read(log_path)[-6000:]}")


@pytest.mark.timeout(300)
async def test_a_clean_start_without_traffic_logs_no_error_line(
    run_platform: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log_path = run_platform
    await _all_serving(process, log_path)

    # Watch the whole log (start-up included) for a minute; any ERROR line ends the wait.
    errors = await eventually(
        lambda: _error_lines(log_path), within_s=QUIET_WINDOW_S, interval_s=0.5
    )

    assert process.poll() is None, _read(log_path)[-4000:]
    assert not errors, "\n".join(errors[:20])


async def test_the_companion_hears_a_signed_order_and_ctrl_c_stops_everything(
    run_platform: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    process, log_path = run_platform

    await _all_serving(process, log_path)
    await _companion_hears_a_signed_order(log_path)
    # Ctrl-C: the terminal signals the whole foreground process group, services included.
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = await asyncio.to_thread(process.wait, 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run_platform still runs 60 s after Ctrl-C:\n{log_path.read_text()[-4000:]}")

    assert code == 0, log_path.read_text()[-4000:]
    assert not _group_alive(process.pid), "service processes outlived run_platform"
    # The companion keeps its subscription for the next run instead of deleting it.
    state = json.loads((tmp_path / "infra" / "state" / "companion.json").read_text())
    assert state["webhook_port"] == COMPANION_WEBHOOK_PORT
    assert state["last_sequence"] >= 1
