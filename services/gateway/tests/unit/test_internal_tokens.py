"""Internal tokens: one audience each, verified by the services' own verifier; keys rotate."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from clinical_testing.service_process import run_until_exit
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinical_platform.principals import Principal, Role
from clinical_platform.tokens import AuthenticationError, TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, key_id, rotate_key_file

pytestmark = pytest.mark.unit

CLINICIAN = Principal(subject="u-1", roles=frozenset({Role.CLINICIAN}), mfa=True,
                      privileges=frozenset({"orders:sign"}), client_id="clinical-cli",
                      on_behalf_of="dr-7")  # fmt: skip


def services_verifier(issuer: InternalTokenIssuer, audience: str) -> TokenVerifier:
    return TokenVerifier.from_pem(
        issuer.public_pem(), issuer="clinical-platform", audience=audience
    )


def test_the_service_sees_the_same_principal() -> None:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    token = issuer.mint(CLINICIAN, audience="clinical-orders")
    assert services_verifier(issuer, "clinical-orders").verify(token) == CLINICIAN
    assert jwt.decode(token, options={"verify_signature": False})["act"] == {"sub": "dr-7"}


def test_a_token_for_one_service_is_refused_by_another() -> None:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    token = issuer.mint(CLINICIAN, audience="clinical-orders")
    with pytest.raises(AuthenticationError):
        services_verifier(issuer, "clinical-results").verify(token)


def test_after_rotation_new_tokens_use_the_new_key_and_both_are_published() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    issuer = InternalTokenIssuer([old], issuer="clinical-platform")
    before = issuer.mint(CLINICIAN, audience="a")
    issuer.rotate(new)
    after = issuer.mint(CLINICIAN, audience="a")
    assert jwt.get_unverified_header(after)["kid"] == key_id(new)
    assert {k["kid"] for k in issuer.jwks()["keys"]} == {key_id(old), key_id(new)}
    verifier = services_verifier(issuer, "a")
    assert verifier.verify(before) == verifier.verify(after)


def test_the_key_file_rotates_keeping_one_old_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.pem"
    rotate_key_file(path)
    first = InternalTokenIssuer.from_pem_file(path, issuer="i", ttl_s=60).jwks()["keys"]
    rotate_key_file(path)
    rotate_key_file(path)
    keys = InternalTokenIssuer.from_pem_file(path, issuer="i", ttl_s=60).jwks()["keys"]
    assert len(first) == 1
    assert len(keys) == 2
    assert first[0]["kid"] not in {k["kid"] for k in keys}
    assert path.stat().st_mode & 0o777 == 0o600


def test_every_call_gets_a_single_use_token_that_the_service_takes_once() -> None:
    key = Ed25519PrivateKey.generate()
    issuer = InternalTokenIssuer([key], issuer="clinical-platform")
    orders = TokenVerifier((key.public_key(),), audience="clinical-orders")
    first = issuer.mint(CLINICIAN, audience="clinical-orders")
    second = issuer.mint(CLINICIAN, audience="clinical-orders")

    assert second != first
    assert jwt.decode(first, options={"verify_signature": False})["single_use"] is True
    assert orders.verify(first).subject == orders.verify(second).subject == CLINICIAN.subject
    with pytest.raises(AuthenticationError, match="already used"):
        orders.verify(first)


def test_the_rotate_command_puts_a_new_key_first(tmp_path: Path) -> None:
    keys = tmp_path / "keys.pem"
    env = {"GATEWAY_SIGNING_KEYS_FILE": str(keys)}
    first = run_until_exit("gateway.entrypoints.rotate_keys", env=env)
    second = run_until_exit("gateway.entrypoints.rotate_keys", env=env)
    assert first.returncode == second.returncode == 0, first.stderr
    assert second.stdout.split()[2].rstrip(";") != first.stdout.split()[2].rstrip(";")
    assert first.stdout.split()[2].rstrip(";") in second.stdout


def test_every_token_has_its_own_jti_a_short_life_and_the_login_time() -> None:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    signer = Principal(subject="u-3", mfa=True, auth_time=1_700_000_000)
    orders = jwt.decode(issuer.mint(signer, audience="clinical-orders"),
                        options={"verify_signature": False})  # fmt: skip
    results = jwt.decode(issuer.mint(signer, audience="clinical-results"),
                         options={"verify_signature": False})  # fmt: skip

    assert orders["jti"] != results["jti"]
    assert orders["exp"] - orders["iat"] == 120
    assert orders["auth_time"] == 1_700_000_000
    assert orders["amr"] == ["pwd", "mfa"]
