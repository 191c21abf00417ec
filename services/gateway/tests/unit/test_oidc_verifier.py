"""The OIDC adapter refuses every token the issue lists, and follows the provider's key rotation."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import jwt
import pytest
from clinical_testing.identity_provider import AUDIENCE, ISSUER, FakeIdentityProvider

from gateway.adapters.oidc import OidcTokenVerifier
from gateway.ports import TokenRejectedError

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> FakeIdentityProvider:
    return FakeIdentityProvider()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(
    provider: FakeIdentityProvider, clock: Clock
) -> AsyncIterator[OidcTokenVerifier]:
    async with provider.client() as http:
        yield OidcTokenVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            algorithms=["RS256"],
            http=http,
            min_refresh_interval_s=30,
            leeway_s=5,
            clock=clock,
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    parts = [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())]
    return ".".join([*parts, _b64(signature)])


async def test_a_valid_token_gives_its_claims(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier
) -> None:
    claims = await verifier.verify(provider.token())
    assert claims["sub"] == "user-1"


# Times are offsets from the moment the test runs, not from collection: a whole-suite run
# collects long before it reaches this module.
_NOW_PLUS = "now+"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": f"{_NOW_PLUS}-60"}, "token expired"),
        ({"aud": "another-api"}, "wrong audience"),
        ({"iss": "http://evil.test/realms/clinical"}, "wrong issuer"),
        ({"nbf": f"{_NOW_PLUS}600"}, "token not yet valid"),
        ({"auth_time": f"{_NOW_PLUS}600"}, "auth_time invalid"),
        ({"sub": None}, "required claim missing"),
    ],
)
async def test_claims_out_of_bounds_are_refused(
    provider: FakeIdentityProvider,
    verifier: OidcTokenVerifier,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {
        name: now + int(value.removeprefix(_NOW_PLUS))
        if isinstance(value, str) and value.startswith(_NOW_PLUS) else value
        for name, value in overrides.items()
    }  # fmt: skip
    with pytest.raises(TokenRejectedError, match=reason):
        await verifier.verify(provider.token(**claims))


async def test_alg_none_is_refused(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier
) -> None:
    token = _unsigned({"alg": "none", "kid": "k1", "typ": "JWT"}, provider.claims())
    with pytest.raises(TokenRejectedError, match="algorithm not allowed"):
        await verifier.verify(token)


async def test_hs256_signed_with_the_public_key_is_refused(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier
) -> None:
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    unsigned = _unsigned(header, provider.claims()).rsplit(".", 1)[0]
    mac = hmac.new(provider.public_pem(), unsigned.encode(), hashlib.sha256).digest()
    with pytest.raises(TokenRejectedError, match="algorithm not allowed"):
        await verifier.verify(f"{unsigned}.{_b64(mac)}")


async def test_a_tampered_payload_is_refused(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier
) -> None:
    header, _, signature = provider.token().split(".")
    forged = _b64(json.dumps(provider.claims(realm_access={"roles": ["auditor"]})).encode())
    with pytest.raises(TokenRejectedError, match="signature invalid"):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_garbage_is_refused_as_malformed(verifier: OidcTokenVerifier) -> None:
    with pytest.raises(TokenRejectedError, match="malformed"):
        await verifier.verify("not-a-jwt")


async def test_unknown_kid_refreshes_once_then_is_refused_without_hammering_the_provider(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier, clock: Clock
) -> None:
    await verifier.verify(provider.token())
    fetches = provider.jwks_fetches
    stranger = FakeIdentityProvider()
    stranger.rotate("k9")
    for _ in range(20):
        with pytest.raises(TokenRejectedError, match="unknown signing key"):
            await verifier.verify(stranger.token(kid="k9"))
    assert provider.jwks_fetches == fetches  # within the refresh interval: no fetch at all
    clock.now += 31
    with pytest.raises(TokenRejectedError, match="unknown signing key"):
        await verifier.verify(stranger.token(kid="k9"))
    assert provider.jwks_fetches == fetches + 1


async def test_a_rotated_key_verifies_at_once_and_the_old_one_still_does(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier, clock: Clock
) -> None:
    old = provider.token()
    await verifier.verify(old)
    clock.now += 31
    provider.rotate("k2")
    assert (await verifier.verify(provider.token(kid="k2")))["sub"] == "user-1"
    assert (await verifier.verify(old))["sub"] == "user-1"


async def test_a_key_of_another_algorithm_is_refused(
    provider: FakeIdentityProvider, verifier: OidcTokenVerifier
) -> None:
    token = jwt.encode(provider.claims(), provider.keys["k1"], "PS256", headers={"kid": "k1"})
    with pytest.raises(TokenRejectedError, match="algorithm not allowed"):
        await verifier.verify(token)


def test_symmetric_algorithms_cannot_be_allowed() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        OidcTokenVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            algorithms=["RS256", "HS256"],
            http=FakeIdentityProvider().client(),
        )


async def test_a_verified_token_is_remembered_until_it_expires(
    provider: FakeIdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        checks.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    async with provider.client() as http:
        verifier = OidcTokenVerifier(
            issuer=ISSUER, audience=AUDIENCE, algorithms=["RS256"], http=http, leeway_s=0
        )
        short = provider.token(exp=int(time.time()) + 1)
        assert (await verifier.verify(short))["sub"] == "user-1"
        assert (await verifier.verify(short))["sub"] == "user-1"
        assert len(checks) == 1  # the second answer came from memory
        await asyncio.sleep(1.1)
        with pytest.raises(TokenRejectedError, match="expired"):
            await verifier.verify(short)
