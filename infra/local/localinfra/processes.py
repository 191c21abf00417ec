"""Background server processes tracked by pid files, started in their own session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import HOST


class StartupError(Exception):
    """A server did not become ready."""


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running server: its pid file, its log, and a marker that identifies it.

    ``marker`` is a string that must appear in the process's command line, so a stale pid file
    whose pid was reused by an unrelated process never makes us signal that process.
    """

    name: str
    state_dir: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running server, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        if self.marker not in cmdline or _is_zombie(pid):
            return None
        return pid

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> int:
        """Start the server detached from our terminal; its output goes to the log file."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal that ran `make infra-up` must not kill it.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        # Right after exec, /proc/<pid>/cmdline reads empty for a moment; wait until it names us
        # (or the process is gone), so pid() does not mistake a starting server for a dead one.
        deadline = time.monotonic() + 5
        while process.poll() is None and self.pid() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return process.pid

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the log: why a server that exited at once did so."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the server's process group, SIGKILL it after ``timeout``. True if it ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            _signal_group(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it is true; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StartupError(
                    f"{self.name} exited during start-up; see {self.log_file}, which ends:\n"
                    + self.log_tail()
                )
            if ready():
                return
            time.sleep(0.25)
        raise StartupError(f"{self.name} was not {what} within {timeout:.0f}s; see {self.log_file}")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def already_running(
    proc: ManagedProcess, ready: Callable[[], bool], timeout: float, port: int, setting: str
) -> bool:
    """True (once it is ready) when our server runs; else check its port is free to start on."""
    if proc.pid() is not None:
        proc.wait_until(ready, timeout, "ready")
        return True
    require_free_port(HOST, port, setting)
    return False


def require_free_port(host: str, port: int, setting: str) -> None:
    """Refuse to start a server on a port another program already holds."""
    if port_open(host, port):
        raise StartupError(
            f"port {port} is already in use by another program: stop it, or pick another port "
            f"with {setting}"
        )
