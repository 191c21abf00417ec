"""Tokens from the real Keycloak at the gateway: each role's principal, every bad token 401."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt import PyJWK

from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]
PATIENT_ID = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # the realm's patient user's record


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def _with(token: str, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None,
          signature: str | None = None) -> str:  # fmt: skip
    head, body, sig = token.split(".")
    if header is not None:
        head = _b64(json.dumps(header).encode())
    if claims is not None:
        body = _b64(json.dumps(claims).encode())
    return ".".join([head, body, sig if signature is None else signature])


async def whoami(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/whoami", headers={"authorization": f"Bearer {token}"})


# username, scopes asked for, then the principal: roles, privileges, launch patient
ROLE_USERS = [
    ("clinician-no-otp", "user/*.cruds", ["clinician"], ["orders:sign"], ""),
    ("lab", "user/Observation.cruds", ["lab"], [], ""),
    ("registrar", "user/Patient.cruds", ["registrar"], [], ""),
    ("auditor", "user/*.rs", ["auditor"], [], ""),
    ("patient", "patient/*.rs launch/patient", ["patient"], [], PATIENT_ID),
    ("admin", "", [], [], ""),
]


@pytest.mark.parametrize("user", ROLE_USERS, ids=[u[0] for u in ROLE_USERS])
async def test_each_role_gets_its_principal(
    keycloak: Keycloak, make_gateway: GatewayFactory,
    user: tuple[str, str, list[str], list[str], str],
) -> None:  # fmt: skip
    username, scope, roles, privileges, patient_id = user
    client, _ = await make_gateway()
    answer = await whoami(client, keycloak.user_token(username, scope))
    assert answer.status_code == 200, answer.text
    me = answer.json()
    assert (me["roles"], me["privileges"], me["patient_id"]) == (roles, privileges, patient_id)
    assert (me["client_id"], me["mfa"]) == ("clinical-cli", False)
    assert me["scopes"] == sorted(s for s in scope.split() if "/" in s and s != "launch/patient")


async def test_a_clinician_with_otp_has_mfa_from_amr(
    keycloak: Keycloak, make_gateway: GatewayFactory, clinician_otp_token: str
) -> None:
    client, _ = await make_gateway()
    me = (await whoami(client, clinician_otp_token)).json()
    assert (me["roles"], me["privileges"], me["mfa"]) == (["clinician"], ["orders:sign"], True)


async def test_a_partner_system_is_a_system_caller(
    keycloak: Keycloak, make_gateway: GatewayFactory
) -> None:
    client, _ = await make_gateway()
    me = (await whoami(client, keycloak.client_token("system/*.rs"))).json()
    assert (me["roles"], me["client_id"], me["contexts"]) == (["lab"], "partner-lab-system",
                                                              ["system"])  # fmt: skip
    assert me["scopes"] == ["system/*.rs"]


async def test_bad_tokens_are_refused_401_with_a_challenge_and_audited(
    keycloak: Keycloak, make_gateway: GatewayFactory
) -> None:
    client, app = await make_gateway(token_leeway_seconds=0)
    good = keycloak.user_token("lab", "user/*.rs")
    claims, header = _part(good, 1), _part(good, 0)
    async with httpx.AsyncClient() as http:
        certs = await http.get(f"{keycloak.issuer}/protocol/openid-connect/certs")
    jwks = certs.json()["keys"]
    rsa = next(k for k in jwks if k["kid"] == header["kid"])
    public_pem = PyJWK(rsa).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    hs_header = {**header, "alg": "HS256"}
    hs_unsigned = _with(good, header=hs_header).rsplit(".", 1)[0]
    hs_mac = _b64(hmac.new(public_pem, hs_unsigned.encode(), hashlib.sha256).digest())
    master = keycloak.admin_token()
    bad = {
        "expired": await _expired_token(keycloak),
        "wrong issuer": master,
        "alg none": _with(good, header={**header, "alg": "none"}, signature=""),
        "HS256 with the public key": f"{hs_unsigned}.{hs_mac}",
        "unknown kid": _with(good, header={**header, "kid": "not-a-key-of-the-realm"}),
        "tampered": _with(good, claims={**claims, "realm_access": {"roles": ["auditor"]}}),
    }
    assert (await whoami(client, good)).status_code == 200
    for name, token in bad.items():
        answer = await whoami(client, token)
        assert answer.status_code == 401, name
        assert (
            answer.headers["www-authenticate"] == 'Bearer realm="clinical", error="invalid_token"'
        )
    assert isinstance(app.audit, RefusalLog)
    assert [r.reason for r in app.audit.recent] == [
        "token expired", "unknown signing key", "algorithm not allowed", "algorithm not allowed",
        "unknown signing key", "signature invalid",
    ]  # fmt: skip
    other_audience, other_app = await make_gateway(oidc_audience="clinical-other-api")
    assert (await whoami(other_audience, good)).status_code == 401
    assert isinstance(other_app.audit, RefusalLog)
    assert other_app.audit.recent[-1].reason == "wrong audience"


async def _expired_token(keycloak: Keycloak) -> str:
    """A real token of a throw-away client whose tokens live one second, once expired."""
    client_id = f"expiry-probe-{uuid.uuid4().hex[:8]}"
    with keycloak.admin() as admin:
        created = admin.post("/clients", json={
            "clientId": client_id, "publicClient": True, "directAccessGrantsEnabled": True,
            "standardFlowEnabled": False, "attributes": {"access.token.lifespan": "1"},
            "defaultClientScopes": ["openid-basic", "clinical-roles", "clinical-gateway-audience"],
        })  # fmt: skip
        created.raise_for_status()
        try:
            token = keycloak.user_token("lab", client_id=client_id)
        finally:
            admin.delete(created.headers["location"].rsplit("/admin/realms/clinical", 1)[1])
    await asyncio.sleep(2.1)
    return token
