"""Key rotation in the real Keycloak, rate limits and SMART scopes on its tokens."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
from clinical_testing.keycloak import Keycloak

from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_after_key_rotation_old_tokens_still_verify_and_new_ones_verify_at_once(
    keycloak: Keycloak, make_gateway: GatewayFactory
) -> None:
    client, _ = await make_gateway(jwks_min_refresh_seconds=0)
    old = keycloak.user_token("lab")
    assert (await client.get("/api/v1/whoami", headers=auth(old))).status_code == 200
    with keycloak.admin() as admin:
        realm_id = admin.get("").json()["id"]
        created = admin.post("/components", json={
            "name": f"rotated-{uuid.uuid4().hex[:8]}", "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm_id,
            "config": {"priority": ["500"], "keySize": ["2048"], "algorithm": ["RS256"],
                       "active": ["true"], "enabled": ["true"]},
        })  # fmt: skip
        created.raise_for_status()
        try:
            new = keycloak.user_token("lab")
            assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
            assert (await client.get("/api/v1/whoami", headers=auth(new))).status_code == 200
            assert (await client.get("/api/v1/whoami", headers=auth(old))).status_code == 200
        finally:
            admin.delete(f"/components/{created.headers['location'].rsplit('/', 1)[1]}")


async def test_the_101st_request_of_a_client_is_429_and_other_clients_are_unaffected(
    keycloak: Keycloak, make_gateway: GatewayFactory
) -> None:
    client, _ = await make_gateway(rate_limit="100/minute")
    user = keycloak.user_token("auditor", "user/*.rs")
    partner = keycloak.client_token("system/*.rs")
    for _ in range(100):
        assert (await client.get("/api/v1/whoami", headers=auth(user))).status_code == 200
    limited = await client.get("/api/v1/whoami", headers=auth(user))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert (await client.get("/api/v1/whoami", headers=auth(partner))).status_code == 200


# user, scopes asked for, a request those scopes do not allow, and the scope it would need
SCOPE_REFUSALS = [
    ("patient", "patient/Observation.rs launch/patient", "POST", "/api/v1/orders",
     "user/ServiceRequest.c"),
    ("lab", "user/Observation.rs", "POST", "/api/v1/results", "user/Observation.c"),
    ("clinician-no-otp", "user/ServiceRequest.rs", "POST",
     "/api/v1/orders/7d5c1c4e-2f59-4f0e-9d0a-0b9b1f8c2a10/sign", "user/ServiceRequest.u"),
    ("registrar", "user/Patient.cruds", "GET", "/api/v1/orders", "user/ServiceRequest.s"),
]  # fmt: skip


@pytest.mark.parametrize("case", SCOPE_REFUSALS, ids=[c[0] for c in SCOPE_REFUSALS])
async def test_keycloak_scopes_limit_what_a_token_may_do(
    keycloak: Keycloak, make_gateway: GatewayFactory, case: tuple[str, str, str, str, str]
) -> None:
    username, scope, method, path, needed = case
    client, app = await make_gateway()
    answer = await client.request(method, path, headers=auth(keycloak.user_token(username, scope)))
    assert answer.status_code == 403
    assert answer.headers["www-authenticate"].endswith(
        f'error="insufficient_scope", scope="{needed}"'
    )
    assert isinstance(app.audit, RefusalLog)
    assert app.audit.recent[-1].reason == "insufficient scope"


async def test_a_system_token_cannot_use_user_scopes(
    keycloak: Keycloak, make_gateway: GatewayFactory
) -> None:
    client, _ = await make_gateway()
    partner = keycloak.client_token("system/*.rs")
    answer = await client.post("/api/v1/results", headers=auth(partner), json={})
    assert answer.status_code == 403
    assert 'scope="system/Observation.c"' in answer.headers["www-authenticate"]
