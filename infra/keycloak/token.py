"""Print an access token from the local Keycloak (realm ``clinical``): local use only.

    python infra/keycloak/token.py --user clinician --scope "user/*.cruds"   # password grant
    python infra/keycloak/token.py --client partner-lab-system --scope "system/*.rs"

Users, passwords (``<user>-local``) and OTP secrets are those of infra/keycloak/clinical-realm.json;
for a user with OTP the current code is computed from that secret, as an authenticator app would.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import pyotp

OTP_USERS = {"clinician"}
CLIENT_SECRETS = {
    "partner-lab-system": "partner-lab-local-secret",
    "bulk-export-system": "bulk-export-local-secret",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a realm user (password grant through clinical-cli)")
    who.add_argument("--client", help="a confidential client (client credentials)")
    parser.add_argument("--scope", default="", help='e.g. "user/*.cruds" or "system/*.rs"')
    port = os.environ.get("CLINICAL_KEYCLOAK_PORT", "18180")
    parser.add_argument("--issuer", default=f"http://127.0.0.1:{port}/realms/clinical")
    args = parser.parse_args(argv)
    if args.user:
        form = {"grant_type": "password", "client_id": "clinical-cli", "username": args.user,
                "password": f"{args.user}-local"}  # fmt: skip
        if args.user in OTP_USERS:
            secret = base64.b32encode(f"{args.user}-otp-secret-local".encode()).decode()
            form["totp"] = pyotp.TOTP(secret).now()
    else:
        form = {"grant_type": "client_credentials", "client_id": args.client,
                "client_secret": CLIENT_SECRETS.get(args.client, "")}  # fmt: skip
    if args.scope:
        form["scope"] = args.scope
    request = urllib.request.Request(  # noqa: S310 - the local Keycloak
        f"{args.issuer}/protocol/openid-connect/token",
        data=urllib.parse.urlencode(form).encode(),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            print(json.load(answer)["access_token"])
    except urllib.error.HTTPError as refused:
        print(f"token: Keycloak refused: {refused.read().decode()[:300]}", file=sys.stderr)
        return 1
    except urllib.error.URLError as unreachable:
        print(f"token: Keycloak unreachable ({unreachable.reason}): make infra-up", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
