"""Local development tokens: ``python -m clinical_platform.devtokens --role clinician``.

`make run` keeps a development signing key in ``.infra/dev-jwt/`` and hands its public half to
every service in JWT_PUBLIC_KEYS; this command signs tokens with the private half. Local use only:
in a deployment tokens come from the platform's token service.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from clinical_platform.audiences import DEFAULT_MAX_LIFETIME_S, PLATFORM_SERVICES, service_audience
from clinical_platform.principals import Principal, Role
from clinical_platform.tokens import ALGORITHM, DEFAULT_ISSUER, token_claims

DEFAULT_KEY_DIR = Path(".infra/dev-jwt")
# Local sessions and tests: one token for every service (the gateway mints one per service).
DEV_AUDIENCES = tuple(service_audience(s) for s in PLATFORM_SERVICES)


def mint_token(
    private_key: Ed25519PrivateKey,
    *,
    subject: str,
    roles: Iterable[Role | str] = (),
    privileges: Iterable[str] = (),
    mfa: bool = False,
    auth_time: int | None = None,
    patient_id: str = "",
    client_id: str = "",
    on_behalf_of: str = "",
    issuer: str = DEFAULT_ISSUER,
    audience: str | Sequence[str] = DEV_AUDIENCES,
    ttl_s: int = DEFAULT_MAX_LIFETIME_S,
) -> str:
    """Sign a token for tests and local runs; an MFA token says the login was just now.

    By default the token names every platform service's audience, so one token serves a whole
    local session; pass ``audience`` to mint one for a single service, as the gateway does.
    """
    now = int(time.time())
    principal = Principal(
        subject=subject, roles=frozenset(Role(r) for r in roles), privileges=frozenset(privileges),
        mfa=mfa, auth_time=(now if mfa else 0) if auth_time is None else auth_time,
        patient_id=patient_id, client_id=client_id, on_behalf_of=on_behalf_of,
    )  # fmt: skip
    claims = token_claims(principal, issuer=issuer, audience=audience, ttl_s=ttl_s, now=now)
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def ensure_dev_key(key_dir: Path = DEFAULT_KEY_DIR) -> str:
    """Create the development key pair once; return the public key PEM."""
    private_path, public_path = key_dir / "private.pem", key_dir / "public.pem"
    if not private_path.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        private_path.touch(mode=0o600)
        private_path.write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
        public_path.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    return public_path.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", default="dev-user")
    parser.add_argument("--role", action="append", choices=[r.value for r in Role], default=[])
    parser.add_argument("--privilege", action="append", default=[], help='e.g. "orders:sign"')
    parser.add_argument("--mfa", action="store_true", help="assert multi-factor authentication")
    parser.add_argument("--patient-id", default="", help="for a patient principal")
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    parser.add_argument(
        "--service", action="append", choices=PLATFORM_SERVICES, default=[],
        help="the service(s) the token is for (default: every service)",
    )  # fmt: skip
    parser.add_argument("--ttl", type=int, default=DEFAULT_MAX_LIFETIME_S, help="seconds")
    args = parser.parse_args(argv)
    ensure_dev_key(args.key_dir)
    key = load_pem_private_key((args.key_dir / "private.pem").read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        print("devtokens: the development key is not an Ed25519 key", file=sys.stderr)
        return 1
    print(
        mint_token(
            key,
            subject=args.subject,
            roles=args.role,
            privileges=args.privilege,
            mfa=args.mfa,
            patient_id=args.patient_id,
            audience=[service_audience(s) for s in args.service] or DEV_AUDIENCES,
            ttl_s=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
