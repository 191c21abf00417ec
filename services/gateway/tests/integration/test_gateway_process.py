"""``python -m gateway`` as a process: HTTP and gRPC health up, Keycloak tokens accepted, the
FHIR API's CapabilityStatement served, and both servers stopped gracefully on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from clinical_testing.service_process import ServiceProcess, free_tcp_port

pytestmark = pytest.mark.integration


async def test_the_gateway_process_serves_http_and_stops_on_sigterm(
    keycloak: Keycloak, tmp_path: Path
) -> None:
    http_port = free_tcp_port()
    env = {
        "GATEWAY_HTTP_PORT": str(http_port), "GATEWAY_OIDC_ISSUER": keycloak.issuer,
        "GATEWAY_SIGNING_KEYS_FILE": str(tmp_path / "keys.pem"),
        "GATEWAY_STATE_DIR": str(tmp_path / "state"), "GATEWAY_ACCESS_TRAIL": "false",
        "GATEWAY_GRPC_GRACE_SECONDS": "5",
    }  # fmt: skip
    token = keycloak.user_token("auditor", "user/*.rs")
    with ServiceProcess.on_free_port("gateway", port_variable="GATEWAY_GRPC_PORT",
                                     env=env) as gateway:  # fmt: skip
        await gateway.wait_serving()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            me = await http.get("/api/v1/whoami", headers={"authorization": f"Bearer {token}"})
            jwks = await http.get("/.well-known/jwks.json")
            refused = await http.get("/api/v1/whoami")
            statement = await http.get("/fhir/r4/metadata")
        assert (me.status_code, me.json()["roles"]) == (200, ["auditor"])
        assert statement.json()["resourceType"] == "CapabilityStatement"
        assert jwks.json()["keys"][0]["alg"] == "EdDSA"
        assert refused.status_code == 401
        assert await gateway.terminate(10) == 0
