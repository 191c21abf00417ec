"""PostgreSQL from Debian's packages: the storage FerretDB serves the read models from.

FerretDB 1.24 pushes an equality filter down as ``_jsonb -> 'field' @> '"value"'`` (with the
field name as a statement parameter). Two server settings make PostgreSQL answer that from an
index instead of reading the whole table, as docs/read-models.md measures:

- ``plan_cache_mode = force_custom_plan``: FerretDB's driver caches prepared statements, and a
  generic plan never sees the field name, so it can match no index expression.
- an event trigger that gives every index FerretDB creates (a B-tree on ``_jsonb -> 'field'``,
  which ``@>`` cannot use) a GIN companion on the same field, which ``@>`` can.

PostgreSQL refuses to run as root; when we are root, the cluster belongs to the ``postgres``
user (Debian's package creates it) and lives where that user can reach it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from .config import HOST, InfraConfig
from .prereqs import MissingPrerequisiteError
from .processes import ManagedProcess, StartupError, already_running, port_open

NAME = "postgresql"
DATABASE = "ferretdb"
SERVER_USER = "postgres"
# Only when we are root and the checkout is out of the server user's reach (see cluster_dir).
SHARED_ROOT = Path("/var/tmp/clinical-platform")  # noqa: S108 - checked by _shared_root()
BOOTSTRAP_SQL = Path(__file__).with_name("postgresql_bootstrap.sql")

SETTINGS = {
    "listen_addresses": HOST,
    "plan_cache_mode": "force_custom_plan",
    # The read models are projections of the Kafka log and are rebuilt from it: losing the last
    # few commits in a crash costs a replay, never data, and a commit need not wait for the disk.
    "synchronous_commit": "off",
    "max_connections": "250",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
}


class PostgresMissingError(MissingPrerequisiteError):
    """Debian's PostgreSQL server is not installed."""


def bin_dir() -> Path:
    """The newest PostgreSQL server binaries Debian installed (``/usr/lib/postgresql/N/bin``)."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise PostgresMissingError(
        "PostgreSQL server not found: install Debian's postgresql package (make infra-install "
        "does it when run as root)"
    )


def install(config: InfraConfig) -> None:
    """Install Debian's PostgreSQL server when it is missing and we may (root with apt-get)."""
    try:
        bin_dir()
        return
    except PostgresMissingError:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise
    # No cluster of its own on the standard port: ours is made by initdb below.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists():
        conf.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ):
        if subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            raise PostgresMissingError(f"`{' '.join(argv)}` failed; install postgresql by hand")
    bin_dir()


def cluster_dir(config: InfraConfig) -> Path:
    """The data directory: under .infra, unless the server user cannot reach it there."""
    state = config.server_dir(NAME)
    if os.geteuid() != 0 or _reachable_by_others(state):
        return state / "data"
    # e.g. a checkout under /root (mode 0700): keep the cluster in a shared place, named
    # after the checkout so two checkouts never share one.
    digest = hashlib.sha256(str(config.data_dir).encode()).hexdigest()[:12]
    return _shared_root() / digest / "data"


def forget(config: InfraConfig) -> None:
    """Delete a cluster kept outside .infra (``make infra-reset`` deletes .infra itself)."""
    data = cluster_dir(config)
    if not data.is_relative_to(config.data_dir):
        shutil.rmtree(data.parent, ignore_errors=True)


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=str(cluster_dir(config)))


def start(config: InfraConfig) -> bool:
    """Start PostgreSQL (creating the cluster and FerretDB's database the first time)."""
    proc = process(config)
    binaries = bin_dir()
    ready = lambda: _accepting(binaries, config.postgres_port)  # noqa: E731
    port, setting = config.postgres_port, "CLINICAL_POSTGRES_PORT"
    if already_running(proc, ready, config.start_timeout, port, setting):
        _bootstrap(binaries, config)  # idempotent: finishes a start that failed half-way
        return False
    data = cluster_dir(config)
    if not (data / "PG_VERSION").exists():
        _initdb(binaries, data)
    clear_stale_locks(data)
    argv = [*as_server_user(), str(binaries / "postgres"), "-D", str(data)]
    argv += ["-p", str(config.postgres_port), "-k", str(data)]
    for name, value in SETTINGS.items():
        argv += ["-c", f"{name}={value}"]
    proc.start(argv, os.environ, cwd=data)
    proc.wait_until(ready, config.start_timeout, "accepting connections")
    _bootstrap(binaries, config)
    return True


def clear_stale_locks(data: Path) -> None:
    """Remove the cluster's lock files (``postmaster.pid``, and the socket's lock beside it)
    when no server of this cluster holds them.

    A server killed with its machine (or a /tmp wiped at boot while the cluster lives on) leaves
    its locks behind. PostgreSQL refuses to start while the pid in one is alive, and after a
    reboot that pid is often some other process of the same user: another cluster's backend.
    Only a process started on this data directory counts as its server.
    """
    for lock in [data / "postmaster.pid", *data.glob(".s.PGSQL.*.lock")]:
        try:
            pid = int(lock.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            cmdline = ""
        if str(data) not in cmdline:
            lock.unlink(missing_ok=True)


def _accepting(binaries: Path, port: int) -> bool:
    """Open for queries: the port opens while the server still recovers ("starting up")."""
    if not port_open(HOST, port):
        return False
    argv = [str(binaries / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", SERVER_USER]
    return subprocess.run(argv, check=False, timeout=10).returncode == 0


def url(config: InfraConfig) -> str:
    return f"postgres://{SERVER_USER}@{HOST}:{config.postgres_port}/{DATABASE}"


def ferretdb_url(config: InfraConfig) -> str:
    # FerretDB holds a connection per statement of an update command until the command ends
    # (and one more to write): a larger pool than its 50 leaves room for concurrent writers.
    return f"{url(config)}?pool_max_conns=150"


def _initdb(binaries: Path, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        for path in (data.parent, data):
            os.chown(path, user.pw_uid, user.pw_gid)
    argv = [*as_server_user(), str(binaries / "initdb"), "-D", str(data)]
    argv += ["-U", SERVER_USER, "--auth=trust", "--encoding=UTF8", "--locale=C"]
    _run(argv, "initdb")


def _bootstrap(binaries: Path, config: InfraConfig) -> None:
    """Create FerretDB's database and the index trigger in it; each step is idempotent."""
    psql = [str(binaries / "psql"), "-h", HOST, "-p", str(config.postgres_port)]
    psql += ["-U", SERVER_USER, "-v", "ON_ERROR_STOP=1", "-q", "-X"]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 - a constant
    exists = _run([*psql, "-tA", "-d", "postgres", "-c", query], "psql")
    if exists.strip() != "1":
        _run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"], "psql")
    _run([*psql, "-d", DATABASE, "-f", str(BOOTSTRAP_SQL)], "psql")


def as_server_user() -> list[str]:
    """setpriv execs in place, so the pid we track is the server's own."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups"]


def _shared_root() -> Path:
    """SHARED_ROOT, made by root: /var/tmp is world-writable, so refuse one someone else made."""
    SHARED_ROOT.mkdir(mode=0o755, exist_ok=True)
    found = SHARED_ROOT.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != 0 or found.st_mode & 0o022:
        raise StartupError(f"{SHARED_ROOT} is not a directory of root's that only root can write")
    return SHARED_ROOT


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _run(argv: list[str], what: str) -> str:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise StartupError(f"{what} failed (exit {completed.returncode}): {completed.stderr}")
    return completed.stdout
