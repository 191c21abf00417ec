"""OpenBao (the Vault API) with Transit and the data-key store, initialised and unsealed by us.

OpenBao's dev mode keeps everything in memory, so a restart would lose every Transit key and
with it every encrypted record: a local crypto-shredding of all data. We run the same binary
as a real server on file storage instead, with one unseal key kept next to the data (mode 0600,
for this machine only), so keys survive restarts like Kafka's and FerretDB's data does.

Configured on every start (each step a no-op when already done), as docs/security.md describes:
the Transit engine with the PHI key-encryption key and the audit signing key, and the KV v2
engine ``clinical-keys/`` that holds the wrapped per-patient data keys.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from . import builds, openbao_access
from .config import HOST, InfraConfig
from .processes import ManagedProcess, StartupError, require_free_port

NAME = "openbao"


def process(config: InfraConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.server_dir(NAME), marker=str(config.server_dir(NAME)))


def install(config: InfraConfig) -> None:
    builds.go_binary(config, NAME)


def root_token(config: InfraConfig) -> str | None:
    """The root token written at initialisation, or None before the first start."""
    init = config.server_dir(NAME) / "init.json"
    if not init.exists():
        return None
    return str(json.loads(init.read_text())["root_token"])


def start(config: InfraConfig) -> bool:
    """Start, initialise (first time), unseal and configure OpenBao. True if started."""
    proc = process(config)
    started = False
    if proc.pid() is None:
        require_free_port(HOST, config.vault_port, "CLINICAL_VAULT_PORT")
        binary = builds.go_binary(config, NAME)
        state = config.server_dir(NAME)
        hcl = state / "server.hcl"
        hcl.write_text(_server_config(config, state / "data"))
        env = dict(os.environ)
        # Keep OpenBao away from the user's own token helper and ~/.vault-token.
        env.pop("VAULT_TOKEN", None)
        env.pop("BAO_TOKEN", None)
        proc.start([str(binary), "server", f"-config={hcl}"], env, cwd=state)
        started = True
    proc.wait_until(lambda: _api(config, "GET", "sys/seal-status") is not None,
                    config.start_timeout, "answering")  # fmt: skip
    _initialise_and_unseal(config)
    proc.wait_until(lambda: _active(config), config.start_timeout, "unsealed and active")
    _enable_transit(config)
    _enable_key_store(config)
    openbao_access.apply(partial(_api, config), tokens_dir(config))
    return started


def tokens_dir(config: InfraConfig) -> Path:
    """Where each service's own token lives (openbao_access)."""
    return config.server_dir(NAME) / "tokens"


def _server_config(config: InfraConfig, data: Path) -> str:
    return (
        f'storage "file" {{\n  path = "{data}"\n}}\n'
        f'listener "tcp" {{\n  address = "{HOST}:{config.vault_port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "{config.vault_addr}"\n'
        # Local development only: mlock needs privileges a developer's machine may not grant.
        "disable_mlock = true\n"
        "ui = false\n"
    )


def _initialise_and_unseal(config: InfraConfig) -> None:
    init_file = config.server_dir(NAME) / "init.json"
    status = _api(config, "GET", "sys/seal-status") or {}
    if not status.get("initialized"):
        if init_file.exists():
            raise StartupError(
                f"OpenBao storage is empty but {init_file} exists; "
                "reset with: make infra-down && rm -rf .infra/openbao"
            )
        result = _api(config, "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        if result is None:
            raise StartupError("OpenBao refused to initialise")
        init_file.touch(mode=0o600)
        init_file.write_text(json.dumps(result))
        status = _api(config, "GET", "sys/seal-status") or {}
    if status.get("sealed"):
        key = json.loads(init_file.read_text())["keys"][0]
        _api(config, "PUT", "sys/unseal", {"key": key})


def _active(config: InfraConfig) -> bool:
    health = _api(config, "GET", "sys/health")
    return bool(health and not health.get("sealed") and not health.get("standby"))


def _enable_transit(config: InfraConfig) -> None:
    mounts = _api(config, "GET", "sys/mounts", token=True) or {}
    if "transit/" not in mounts.get("data", mounts):
        _api(config, "POST", "sys/mounts/transit", {"type": "transit"}, token=True)
    # The default names in the settings base (VAULT_PHI_KEY, VAULT_AUDIT_SIGNING_KEY).
    for name, key_type in (("clinical-phi", "aes256-gcm96"), ("clinical-audit", "ed25519")):
        if _api(config, "GET", f"transit/keys/{name}", token=True) is None:
            _api(config, "POST", f"transit/keys/{name}", {"type": key_type}, token=True)


def _enable_key_store(config: InfraConfig) -> None:
    mounts = _api(config, "GET", "sys/mounts", token=True) or {}
    if "clinical-keys/" not in mounts.get("data", mounts):
        body = {"type": "kv", "options": {"version": "2"}}
        _api(config, "POST", "sys/mounts/clinical-keys", body, token=True)
    # One version per wrapped key (a rewrap leaves no older copy behind) and check-and-set on
    # every write (two writers never silently replace a patient's data key).
    settings = {"max_versions": 1, "cas_required": True}
    for _attempt in range(50):
        # A new KV v2 mount takes a moment to finish setting up before it accepts its config.
        _api(config, "POST", "clinical-keys/config", settings, token=True)
        current = (_api(config, "GET", "clinical-keys/config", token=True) or {}).get("data", {})
        if current.get("max_versions") == 1 and current.get("cas_required"):
            return
        time.sleep(0.1)
    raise StartupError("OpenBao did not accept the clinical-keys/ configuration")


def _api(
    config: InfraConfig,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: bool = False,
) -> dict[str, Any] | None:
    """Call the OpenBao HTTP API; None when it is not reachable or answers with an error."""
    request = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 server
        f"{config.vault_addr}/v1/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("X-Vault-Token", root_token(config) or "")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            payload = response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return json.loads(payload) if payload else {}
