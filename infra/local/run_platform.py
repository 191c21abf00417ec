"""`make run`: the local servers plus every service in the foreground, with prefixed logs.

Once notify serves, the companion app example (examples/companion_app.py) starts too, with a
clinician dev token, and prints every notification it receives; it is a client, so its exit does
not stop the platform. Its webhook listens on 127.0.0.1:18056 and it keeps its subscription in
`<state>/companion.json`, so the next `make run` resumes the same subscription instead of leaving
one behind. Ctrl-C (or SIGTERM) stops the services gracefully, then the servers this
run started. Servers that were already running (say from `make infra-up`) are left running.
Existing servers named by KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, VAULT_ADDR and VAULT_TOKEN (all
four set) win: then no local server is started. Service state lives in CLINICAL_INFRA_DIR
(default `.infra`), as the servers' data does, or in CLINICAL_RUN_STATE_DIR when set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinical_platform.devtokens import ensure_dev_key, mint_token
from clinical_platform.principals import Role
from gateway.adapters.internal_tokens import rotate_key_file
from localinfra.config import InfraConfig
from localinfra.observe import LocalStack, metrics_env

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where `make token` finds the key, whatever CLINICAL_INFRA_DIR says.
DEV_KEY_DIR = REPO_ROOT / ".infra" / "dev-jwt"
# The gateway's token-exchange keys; the services read their public halves from its JWKS.
GATEWAY_KEYS = REPO_ROOT / ".infra" / "gateway" / "signing-keys.pem"
GATEWAY_JWKS_URL = "http://127.0.0.1:18080/.well-known/jwks.json"
SERVER_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL", "VAULT_ADDR", "VAULT_TOKEN")
SERVICES = {
    "gateway": 18050,
    "patient": 18051,
    "orders": 18052,
    "results": 18053,
    "notify": 18054,
    "audit": 18055,
}
GRACE_SECONDS = 15
COMPANION = "companion"
COMPANION_SCRIPT = REPO_ROOT / "examples" / "companion_app.py"
# Fixed, so the subscription the companion keeps across runs finds its webhook again.
COMPANION_WEBHOOK_PORT = 18056
LOG_PREFIX_WIDTH = max(map(len, [*SERVICES, COMPANION]))


def _localinfra(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "infra" / "local")}
    return subprocess.run(
        [sys.executable, "-m", "localinfra", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def _exports(principal: str = "admin") -> dict[str, str]:
    """The servers' variables; Kafka's as `principal` (infra/kafka/acls.toml)."""
    lines = _localinfra("env", principal).stdout.splitlines()
    pairs = (
        line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
    )
    return {name: shlex.split(value)[0] if value else "" for name, value in pairs}


async def _relay(name: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"{name:<{LOG_PREFIX_WIDTH}} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _state_root() -> Path:
    if explicit := os.environ.get("CLINICAL_RUN_STATE_DIR"):
        return Path(explicit).resolve()
    # The folder localinfra keeps the servers' data in: the services' state belongs beside it.
    return Path(os.environ.get("CLINICAL_INFRA_DIR") or REPO_ROOT / ".infra").resolve() / "state"


COMPANION_TOKEN_TTL_S = 7 * 24 * 3600


def _companion_token() -> str:
    """A clinician token signed with the dev key, as `make -s token ROLE=clinician` mints one."""
    key = load_pem_private_key((DEV_KEY_DIR / "private.pem").read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{DEV_KEY_DIR / 'private.pem'} is not an Ed25519 key")
    return mint_token(
        key, subject="dev-companion", roles=[Role.CLINICIAN], ttl_s=COMPANION_TOKEN_TTL_S
    )


async def _wait_serving(address: str) -> None:
    """Return once the gRPC health service at `address` reports SERVING."""
    request = health_pb2.HealthCheckRequest()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                response = await stub.Check(request, timeout=2)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.5)


async def _start_companion(
    env: dict[str, str], relays: list[asyncio.Task[None]]
) -> asyncio.subprocess.Process:
    """The companion app example, once notify serves; its output is relayed like a service's."""
    notify = f"127.0.0.1:{SERVICES['notify']}"
    await _wait_serving(notify)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(COMPANION_SCRIPT), "--notify", notify,
        "--webhook-port", str(COMPANION_WEBHOOK_PORT),
        "--state-file", str(_state_root() / "companion.json"),
        env={**env, "CLINICAL_TOKEN": _companion_token()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    if process.stdout is not None:
        relays.append(asyncio.create_task(_relay(COMPANION, process.stdout)))
    return process


async def _run_services(env: dict[str, str], local_servers: bool) -> int:
    processes: dict[str, asyncio.subprocess.Process] = {}
    relays = []
    for name, port in SERVICES.items():
        service_env = {
            **env,
            # Each service connects to the local Kafka as its own principal, with its own ACLs.
            **(_exports(name) if local_servers else {}),
            f"{name.upper()}_GRPC_PORT": str(port),
            f"{name.upper()}_STATE_DIR": str(_state_root() / name),
            # Reflection on for local exploration with grpcurl; it is off by default.
            f"{name.upper()}_GRPC_REFLECTION": "true",
            **metrics_env(name),  # scraped by the local Prometheus (docs/observability.md)
        }
        if name == "notify":
            # Local runs only: the companion app's webhook is plain http on loopback.
            service_env["NOTIFY_WEBHOOK_ALLOW_HTTP"] = "true"
            service_env["NOTIFY_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", name, env=service_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        processes[name] = process
        if process.stdout is not None:  # always, with stdout=PIPE; this tells the type checker
            relays.append(asyncio.create_task(_relay(name, process.stdout)))

    print("\nservices (gRPC, plaintext, 127.0.0.1 only):")
    for name, port in SERVICES.items():
        print(f"  {name:<8} 127.0.0.1:{port}")
    print(
        f"  {COMPANION:<8} 127.0.0.1:{COMPANION_WEBHOOK_PORT} (webhook, http), "
        "examples/companion_app.py, once notify serves"
    )
    if _observing.urls:
        print("observability (traces, metrics, alerts):", *_observing.urls, sep="\n")
    print("tokens for calling them: make -s token ROLE=clinician (see make help)")
    print("press Ctrl-C to stop everything\n", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exits = [asyncio.create_task(p.wait()) for p in processes.values()]
    companion = asyncio.create_task(_start_companion(env, relays))
    companion.add_done_callback(_report_companion)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
    crashed = [n for n, p in processes.items() if p.returncode is not None]
    if crashed:
        print(f"\nstopping: {', '.join(crashed)} exited", flush=True)

    companion.cancel()  # still waiting for notify: nothing to stop
    everything = list(processes.values())
    if companion.done() and not companion.cancelled() and companion.exception() is None:
        everything.append(companion.result())
        exits.append(asyncio.create_task(companion.result().wait()))
    for process in everything:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*exits), GRACE_SECONDS + 5)
    except TimeoutError:
        for process in everything:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await asyncio.gather(*relays, return_exceptions=True)
    stopper.cancel()
    return 1 if crashed else 0


def _report_companion(task: asyncio.Task[asyncio.subprocess.Process]) -> None:
    """Say when the companion app ends by itself (a client: the services keep running)."""
    if task.cancelled():
        return
    if (error := task.exception()) is not None:
        print(f"{COMPANION} did not start: {error}", flush=True)
        return

    async def report(process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            print(f"{COMPANION} exited with {code}; the services keep running", flush=True)

    _background.add(asyncio.create_task(report(task.result())))


_background: set[asyncio.Task[None]] = set()
# The observability stack of this run (empty with NO_OBSERVE=1).
_observing = LocalStack(InfraConfig.from_env())


def main() -> int:
    started: list[str] = []
    servers: dict[str, str] = {}
    if all(os.environ.get(name) for name in SERVER_ENV):
        # Existing servers named by the environment win, as in the test fixtures (README, "Tests").
        print(f"using the servers named by {', '.join(SERVER_ENV)}", flush=True)
    else:
        print(
            "starting the local servers (the first run downloads and builds them) ...", flush=True
        )
        up = _localinfra("up")
        sys.stdout.write(up.stdout)
        if up.returncode != 0:
            sys.stderr.write(up.stderr)
            return up.returncode
        started = [line.split()[0] for line in up.stdout.splitlines() if " started " in f"{line} "]
        servers = _exports()
    # Prometheus and Zipkin, unless NO_OBSERVE=1 (make run NO_OBSERVE=1).
    if not os.environ.get("NO_OBSERVE"):
        print("starting Prometheus and Zipkin (the first run installs them) ...", flush=True)
        _observing.start()
    if not GATEWAY_KEYS.exists():
        rotate_key_file(GATEWAY_KEYS)
    env = {
        **os.environ, **servers,
        # The services read the gateway's keys from its JWKS (a rotation needs no restart of
        # theirs); the development key signs the companion app's token (make token).
        "JWT_PUBLIC_KEYS": ensure_dev_key(DEV_KEY_DIR),
        "JWT_JWKS_URL": GATEWAY_JWKS_URL,
        "GATEWAY_SIGNING_KEYS_FILE": str(GATEWAY_KEYS),
        # Local runs only: the companion app holds one dev token for its week-long life.
        "JWT_MAX_LIFETIME_SECONDS": str(COMPANION_TOKEN_TTL_S),
    }  # fmt: skip
    env |= _observing.env
    try:
        status = asyncio.run(_run_services(env, local_servers=bool(servers)))
    finally:
        _observing.stop()
        if started:
            print(f"stopping the servers this run started: {', '.join(started)}", flush=True)
            sys.stdout.write(_localinfra("down", *started).stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
