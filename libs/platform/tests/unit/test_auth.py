"""Tokens: who the caller is, and when to refuse to say."""

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clinical_platform.devtokens import mint_token
from clinical_platform.principals import Role
from clinical_platform.tokens import AuthenticationError, TokenVerifier

pytestmark = pytest.mark.unit


def _pem(key: Ed25519PrivateKey) -> str:
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def test_a_valid_token_names_the_principal_with_roles_privileges_and_mfa() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier((key.public_key(),))
    token = mint_token(
        key, subject="dr-who", roles=[Role.CLINICIAN], privileges=["orders:sign"], mfa=True,
        client_id="ward-app", on_behalf_of="nurse-1",
    )  # fmt: skip

    principal = verifier.verify(token)

    assert principal.subject == "dr-who"
    assert principal.has(Role.CLINICIAN)
    assert not principal.has(Role.LAB)
    assert principal.privileges == {"orders:sign"}
    assert principal.mfa
    assert principal.actor.on_behalf_of == "nurse-1"
    assert principal.actor.client_id == "ward-app"


def test_a_token_without_mfa_does_not_assert_it() -> None:
    key = Ed25519PrivateKey.generate()
    principal = TokenVerifier((key.public_key(),)).verify(mint_token(key, subject="x"))
    assert not principal.mfa


@pytest.mark.parametrize(
    "tamper",
    ["expired", "other key", "wrong audience", "unknown role", "garbage"],
)
def test_untrustworthy_tokens_are_refused(tamper: str) -> None:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier((key.public_key(),))
    tokens = {
        "expired": mint_token(key, subject="x", ttl_s=-120),
        "other key": mint_token(Ed25519PrivateKey.generate(), subject="x"),
        "wrong audience": mint_token(key, subject="x", audience="elsewhere"),
        "unknown role": jwt.encode(
            {
                "sub": "x",
                "iss": "clinical-platform",
                "aud": "clinical-services",
                "iat": 0,
                "exp": 2**40,
                "roles": ["superuser"],
            },
            key,
            algorithm="EdDSA",
        ),
        "garbage": "not.a.token",
    }

    with pytest.raises(AuthenticationError):
        verifier.verify(tokens[tamper])


def test_both_keys_of_a_rotating_pem_bundle_are_trusted() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = TokenVerifier.from_pem(
        _pem(old) + _pem(new), issuer="clinical-platform", audience="clinical-services"
    )

    assert verifier.verify(mint_token(old, subject="a")).subject == "a"
    assert verifier.verify(mint_token(new, subject="b")).subject == "b"


def test_a_verifier_without_keys_refuses_everything() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(AuthenticationError):
        TokenVerifier(()).verify(mint_token(key, subject="x"))
