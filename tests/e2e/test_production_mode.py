"""Every service process refuses to start in production mode with insecure settings.

Each runs as a real process (``python -m <service>``) and exits 2 with one stderr line per
refusal before it connects to anything, so no servers are needed: a unit test by cost.
"""

from __future__ import annotations

import pytest
from clinical_testing.service_process import run_until_exit

pytestmark = pytest.mark.unit

INSECURE = {
    "ENVIRONMENT": "production",
    "VAULT_ADDR": "http://127.0.0.1:9",
    # A role login is not looked up (no Vault here); the static-token check has its own test.
    "VAULT_AUTH_METHOD": "approle",
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    "JWT_PUBLIC_KEYS": "",
    "JWT_MAX_LIFETIME_SECONDS": "900",
    "NOTIFY_WEBHOOK_ALLOW_HTTP": "true",
    "GATEWAY_OIDC_ISSUER": "http://127.0.0.1:9/realms/clinical",
}
OWN = {
    "notify": ["NOTIFY_WEBHOOK_ALLOW_HTTP: webhooks would carry PHI over plain http"],
    "gateway": ["GATEWAY_OIDC_ISSUER: not https; its signing keys could be swapped on the way"],
}


@pytest.mark.parametrize("service", ["patient", "orders", "results", "notify", "audit", "gateway"])
def test_a_service_in_production_mode_refuses_insecure_settings_line_by_line(
    service: str,
) -> None:
    prefix = service.upper()
    exited = run_until_exit(service, env=INSECURE | {f"{prefix}_GRPC_REFLECTION": "false"})

    refusals = [
        line.removeprefix("production mode: ")
        for line in exited.stderr.splitlines()
        if line.startswith("production mode: ")
    ]
    assert exited.returncode == 2, exited.stderr
    assert refusals == [
        f"{prefix}_GRPC_TLS_CERT_FILE, {prefix}_GRPC_TLS_KEY_FILE, {prefix}_GRPC_TLS_CA_FILE: "
        "unset; gRPC must be mutual TLS, plaintext is refused",
        "VAULT_ADDR: not https; tokens and data keys would cross the network in the clear",
        "KAFKA_SECURITY_PROTOCOL: PLAINTEXT; production speaks SASL_SSL only",
        *OWN.get(service, []),
    ]
    assert "Traceback" not in exited.stderr
