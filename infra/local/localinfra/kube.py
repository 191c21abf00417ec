"""A throwaway Kubernetes API server on loopback for the deploy checks (tests/deploy).

etcd and kube-apiserver are built from their Go modules by `make tools` (infra/local/go/etcd,
infra/local/go/kube-apiserver) and cached like the other tools. The server runs with RBAC on and
one static cluster-admin token, and nothing else of a control plane: no kubelet, scheduler or
controller manager. Objects are therefore validated, defaulted, admitted and stored for real,
but no pod ever runs and no controller acts on them (a StatefulSet gets no pods, an HPA no
status).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .config import HOST, InfraConfig
from .processes import ManagedProcess, StartupError, require_free_port
from .tools import install as install_tools

ADMIN_USER = "clinical-admin"
# The ranges the server allocates Service IPs from: bookkeeping only, nothing is routed.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"


@dataclass(frozen=True)
class KubePorts:
    """The loopback ports of one API server and its etcd (2xxxx: clear of the other servers)."""

    etcd_client: int = 23790
    etcd_peer: int = 23791
    apiserver: int = 26443


@dataclass(frozen=True)
class KubeAPIServer:
    """A running API server: where it listens and a kubeconfig with the admin token."""

    server: str
    kubeconfig: Path
    admin_token: str
    work_dir: Path
    etcd: ManagedProcess
    apiserver: ManagedProcess

    def stop(self) -> None:
        """Stop the API server, then etcd (their data stays in work_dir)."""
        self.apiserver.stop()
        self.etcd.stop()


def start(
    config: InfraConfig, work_dir: Path, ports: KubePorts = KubePorts(), timeout: float = 120.0
) -> KubeAPIServer:
    """Build (when not cached) and start etcd and kube-apiserver under ``work_dir``."""
    bin_dir = install_tools(config, ["etcd", "kube-apiserver", "kubectl"])
    for port, setting in (
        (ports.etcd_client, "etcd client"),
        (ports.etcd_peer, "etcd peer"),
        (ports.apiserver, "kube-apiserver"),
    ):
        require_free_port(HOST, port, f"another {setting} port")
    work_dir.mkdir(parents=True, exist_ok=True)
    etcd = _start_etcd(bin_dir, work_dir, ports, timeout)
    try:
        token = secrets.token_urlsafe(32)
        apiserver = _start_apiserver(bin_dir, work_dir, ports, token, timeout)
    except BaseException:
        etcd.stop()
        raise
    server = f"https://{HOST}:{ports.apiserver}"
    kubeconfig = work_dir / "kubeconfig"
    kubeconfig.write_text(_kubeconfig(server, work_dir / "certs" / "apiserver.crt", token))
    kubeconfig.chmod(0o600)
    return KubeAPIServer(server, kubeconfig, token, work_dir, etcd, apiserver)


def _start_etcd(bin_dir: Path, work_dir: Path, ports: KubePorts, timeout: float) -> ManagedProcess:
    etcd = ManagedProcess("etcd", work_dir, marker=str(work_dir / "etcd-data"))
    client = f"http://{HOST}:{ports.etcd_client}"
    peer = f"http://{HOST}:{ports.etcd_peer}"
    argv = [
        str(bin_dir / "etcd"),
        "--name", "deploy-check",
        "--data-dir", str(work_dir / "etcd-data"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"deploy-check={peer}",
        "--log-level", "warn",
        # A test store: one small node, no fsync cost worth paying.
        "--unsafe-no-fsync", "--quota-backend-bytes", str(256 * 1024 * 1024),
    ]  # fmt: skip
    etcd.start(argv, env={"PATH": "/usr/bin:/bin"}, cwd=work_dir)
    etcd.wait_until(lambda: _http_ok(f"{client}/health"), timeout, "healthy")
    return etcd


def _start_apiserver(
    bin_dir: Path, work_dir: Path, ports: KubePorts, token: str, timeout: float
) -> ManagedProcess:
    certs = work_dir / "certs"
    certs.mkdir(exist_ok=True)
    service_account_key = certs / "service-account.key"
    if not service_account_key.exists():
        service_account_key.write_bytes(_rsa_private_key_pem())
        service_account_key.chmod(0o600)
    tokens = work_dir / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    tokens.chmod(0o600)
    apiserver = ManagedProcess("kube-apiserver", work_dir, marker=str(certs))
    argv = [
        str(bin_dir / "kube-apiserver"),
        "--bind-address", HOST, "--advertise-address", HOST,
        "--secure-port", str(ports.apiserver),
        "--cert-dir", str(certs),
        "--etcd-servers", f"http://{HOST}:{ports.etcd_client}",
        "--authorization-mode", "RBAC",
        "--token-auth-file", str(tokens),
        "--anonymous-auth=false",
        "--service-account-issuer", "https://kubernetes.default.svc",
        "--service-account-key-file", str(service_account_key),
        "--service-account-signing-key-file", str(service_account_key),
        "--service-cluster-ip-range", SERVICE_CLUSTER_IP_RANGE,
        # No kubelet or controller manager: nothing else would keep these consistent.
        "--endpoint-reconciler-type", "none",
        "--enable-admission-plugins", "NamespaceLifecycle,ServiceAccount,DefaultStorageClass,"
        "ResourceQuota,LimitRanger,PodSecurity",
        "--v", "0",
    ]  # fmt: skip
    apiserver.start(argv, env={"PATH": "/usr/bin:/bin"}, cwd=work_dir)
    url = f"https://{HOST}:{ports.apiserver}/readyz"
    apiserver.wait_until(lambda: _http_ok(url, token), timeout, "ready")
    return apiserver


def _http_ok(url: str, token: str | None = None) -> bool:
    request = urllib.request.Request(url)  # noqa: S310 - always our own loopback server
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # Readiness only: the serving certificate is checked by the clients that use the kubeconfig.
    context = ssl._create_unverified_context() if url.startswith("https") else None  # noqa: S323
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310 - idem
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _rsa_private_key_pem() -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StartupError(
            "openssl not found on PATH: install OpenSSL (Debian: apt-get install openssl)"
        )
    completed = subprocess.run(
        [openssl, "genrsa", "2048"], capture_output=True, check=False, timeout=60
    )
    if completed.returncode != 0:
        raise StartupError(f"openssl genrsa failed: {completed.stderr.decode(errors='replace')}")
    return completed.stdout


def _kubeconfig(server: str, ca_file: Path, token: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "deploy-check",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {"name": "deploy-check", "context": {"cluster": "deploy-check", "user": ADMIN_USER}}
        ],
        "current-context": "deploy-check",
    }
    return json.dumps(config, indent=2)
