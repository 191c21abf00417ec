"""`make run` (infra/local/run_platform.py): every service comes up, and Ctrl-C stops them all.

run_platform is pointed at the session's servers through KAFKA_BOOTSTRAP_SERVERS & co. (existing
servers win, so it starts none) and keeps its service state in a temporary CLINICAL_INFRA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinical_platform.testing.endpoints import ServerEndpoints
from clinical_platform.testing.isolated import SERVER_ENV
from clinical_platform.testing.service_process import wait_until_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# The fixed ports run_platform gives the services (gateway, patient, orders, results, notify,
# audit).
SERVICE_PORTS = range(50050, 50056)


def _taken_ports() -> list[int]:
    taken = []
    for port in SERVICE_PORTS:
        with socket.socket() as sock:
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
def run_platform(
    servers: ServerEndpoints, pytestconfig: pytest.Config, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """run_platform.py in a process group of its own, as a shell runs a foreground job."""
    if taken := _taken_ports():
        pytest.skip(f"`make run` needs 127.0.0.1:50050-50055; in use: {taken}")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV} | servers.as_env()
    env |= {"CLINICAL_INFRA_DIR": str(tmp_path / "infra"), "PYTHONUNBUFFERED": "1"}
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def test_ctrl_c_stops_every_service_cleanly(
    run_platform: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log_path = run_platform

    def exited() -> str | None:
        if process.poll() is None:
            return None
        return f"run_platform exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"

    await asyncio.gather(
        *(wait_until_serving(f"127.0.0.1:{port}", within_s=120, exited=exited)
          for port in SERVICE_PORTS)
    )  # fmt: skip
    # Ctrl-C: the terminal signals the whole foreground process group, services included.
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = await asyncio.to_thread(process.wait, 60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run_platform still runs 60 s after Ctrl-C:\n{log_path.read_text()[-4000:]}")

    assert code == 0, log_path.read_text()[-4000:]
    assert not _group_alive(process.pid), "service processes outlived run_platform"
