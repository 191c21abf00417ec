"""Tokens: who the caller is, and when to refuse to say."""

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clinical_platform.audiences import service_audience
from clinical_platform.devtokens import mint_token
from clinical_platform.principals import Principal, Role
from clinical_platform.tokens import AuthenticationError, TokenVerifier

pytestmark = pytest.mark.unit

ORDERS = service_audience("orders")


def _pem(key: Ed25519PrivateKey) -> str:
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def _orders_verifier(key: Ed25519PrivateKey) -> TokenVerifier:
    return TokenVerifier((key.public_key(),), audience=ORDERS)


@dataclass(frozen=True)
class FromNow:
    """A time ``seconds`` after the token is signed: a parameter list is built when the suite
    is collected, which a whole-suite run does long before it reaches this module."""

    seconds: int


def _signed(key: Ed25519PrivateKey, **changes: Any) -> str:
    """A hand-made token: valid for orders unless ``changes`` say otherwise (None drops)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "clinical-platform", "aud": ORDERS, "sub": "x", "iat": now, "exp": now + 60,
        "jti": uuid.uuid4().hex, "roles": ["clinician"], "amr": ["pwd"],
    }  # fmt: skip
    claims.update(
        {name: now + value.seconds if isinstance(value, FromNow) else value
         for name, value in changes.items()}
    )  # fmt: skip
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="EdDSA")


def test_a_valid_token_names_the_principal_with_roles_privileges_and_mfa() -> None:
    key = Ed25519PrivateKey.generate()
    token = mint_token(
        key, subject="dr-who", roles=[Role.CLINICIAN], privileges=["orders:sign"], mfa=True,
        client_id="ward-app", on_behalf_of="nurse-1",
    )  # fmt: skip

    principal = _orders_verifier(key).verify(token)

    assert principal.subject == "dr-who"
    assert principal.has(Role.CLINICIAN)
    assert not principal.has(Role.LAB)
    assert principal.privileges == {"orders:sign"}
    assert principal.mfa
    assert abs(principal.auth_time - time.time()) < 5
    assert principal.actor.on_behalf_of == "nurse-1"
    assert principal.actor.client_id == "ward-app"


def test_a_token_without_mfa_does_not_assert_it() -> None:
    key = Ed25519PrivateKey.generate()
    principal = _orders_verifier(key).verify(mint_token(key, subject="x"))
    assert not principal.mfa
    assert principal.auth_time == 0


@pytest.mark.parametrize(
    "tamper",
    ["expired", "other key", "wrong audience", "unknown role", "garbage"],
)
def test_untrustworthy_tokens_are_refused(tamper: str) -> None:
    key = Ed25519PrivateKey.generate()
    tokens = {
        "expired": mint_token(key, subject="x", ttl_s=-120),
        "other key": mint_token(Ed25519PrivateKey.generate(), subject="x"),
        "wrong audience": mint_token(key, subject="x", audience="elsewhere"),
        "unknown role": _signed(key, roles=["superuser"]),
        "garbage": "not.a.token",
    }

    with pytest.raises(AuthenticationError):
        _orders_verifier(key).verify(tokens[tamper])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": None}, "missing the exp claim"),
        ({"iat": None}, "missing the iat claim"),
        ({"jti": None}, "missing the jti claim"),
        ({"jti": ""}, "jti must be a non-empty string"),
        ({"exp": FromNow(3600)}, "lives longer than 900 s (exp - iat)"),
        ({"aud": service_audience("patient")}, "not issued for this service (aud)"),
        ({"aud": "clinical-services"}, "not issued for this service (aud)"),
        ({"amr": "nomfa"}, "amr must be a list of strings"),
        ({"amr": "mfa"}, "amr must be a list of strings"),
        ({"amr": [{"m": "mfa"}]}, "amr must be a list of strings"),
        ({"auth_time": "yesterday"}, "auth_time must be a past time in whole seconds"),
        ({"auth_time": FromNow(3600)}, "auth_time must be a past time in whole seconds"),
        ({"iss": "someone-else"}, "not from a trusted issuer (iss)"),
        ({"single_use": "yes"}, "single_use must be true or false"),
    ],
)
def test_each_token_rule_refuses_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    key = Ed25519PrivateKey.generate()

    with pytest.raises(AuthenticationError) as refused:
        _orders_verifier(key).verify(_signed(key, **changes))

    assert str(refused.value) == reason


def test_a_single_use_token_is_refused_the_second_time_and_another_is_not() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _orders_verifier(key)
    once, other = _signed(key, single_use=True), _signed(key, single_use=True)

    assert verifier.verify(once).subject == "x"
    with pytest.raises(AuthenticationError) as replayed:
        verifier.verify(once)
    assert verifier.verify(other).subject == "x"
    assert str(replayed.value) == "already used (jti); a single-use token serves one call"


def test_a_token_not_marked_single_use_serves_until_it_expires() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _orders_verifier(key)
    session = mint_token(key, subject="x", audience=ORDERS)

    assert [verifier.verify(session).subject for _ in range(3)] == ["x", "x", "x"]


def test_an_invalid_single_use_token_takes_no_place_in_the_seen_set() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _orders_verifier(key)

    with pytest.raises(AuthenticationError):
        verifier.verify(_signed(key, single_use=True, amr="mfa"))

    assert len(verifier.seen) == 0


def test_a_token_for_one_service_is_refused_by_every_other() -> None:
    key = Ed25519PrivateKey.generate()
    token = mint_token(key, subject="x", audience=ORDERS)

    assert _orders_verifier(key).verify(token).subject == "x"
    for other in ("patient", "results", "notify", "audit"):
        verifier = TokenVerifier((key.public_key(),), audience=service_audience(other))
        with pytest.raises(AuthenticationError, match="not issued for this service"):
            verifier.verify(token)


def test_the_longest_lifetime_is_a_setting() -> None:
    key = Ed25519PrivateKey.generate()
    day_long = mint_token(key, subject="x", ttl_s=86_400)
    patient = TokenVerifier((key.public_key(),), audience=ORDERS, max_lifetime_s=86_400)

    assert patient.verify(day_long).subject == "x"
    with pytest.raises(AuthenticationError, match="lives longer"):
        _orders_verifier(key).verify(day_long)


def test_only_an_mfa_list_asserts_mfa_and_auth_time_is_read() -> None:
    key = Ed25519PrivateKey.generate()
    login = int(time.time()) - 60

    principal = _orders_verifier(key).verify(_signed(key, amr=["otp", "mfa"], auth_time=login))
    nomfa = _orders_verifier(key).verify(_signed(key, amr=["nomfa"]))

    assert principal.mfa
    assert principal.auth_time == login
    assert not nomfa.mfa


def test_mfa_is_recent_only_within_the_window() -> None:
    now = 1_000_000.0
    fresh = Principal(subject="x", mfa=True, auth_time=int(now) - 299)
    stale = Principal(subject="x", mfa=True, auth_time=int(now) - 301)
    unstated = Principal(subject="x", mfa=True)
    no_mfa = Principal(subject="x", auth_time=int(now))

    assert fresh.authenticated_with_mfa_within(300, now=now)
    assert not stale.authenticated_with_mfa_within(300, now=now)
    assert not unstated.authenticated_with_mfa_within(300, now=now)
    assert not no_mfa.authenticated_with_mfa_within(300, now=now)


def test_both_keys_of_a_rotating_pem_bundle_are_trusted() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = TokenVerifier.from_pem(
        _pem(old) + _pem(new), issuer="clinical-platform", audience=ORDERS
    )

    assert verifier.verify(mint_token(old, subject="a")).subject == "a"
    assert verifier.verify(mint_token(new, subject="b")).subject == "b"


def test_a_verifier_without_keys_refuses_everything() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(AuthenticationError, match="not signed by a trusted key"):
        TokenVerifier((), audience=ORDERS).verify(mint_token(key, subject="x"))
