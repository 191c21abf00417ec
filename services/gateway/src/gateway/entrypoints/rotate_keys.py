"""``python -m gateway.entrypoints.rotate_keys``: put a new internal signing key first.

The gateway's key file (GATEWAY_SIGNING_KEYS_FILE) then holds the new key and the previous
one. Restart the gateway replicas: they sign with the new key and keep publishing the previous
one at /.well-known/jwks.json, so tokens signed before the restart verify until they expire
(GATEWAY_INTERNAL_TOKEN_TTL_SECONDS). Hand the services the new public keys before that.
"""

from __future__ import annotations

import sys

from clinical_platform.settings import load_settings_or_exit
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.settings import GatewaySettings


def main() -> int:
    settings = load_settings_or_exit(GatewaySettings)
    rotate_key_file(settings.signing_keys_file)
    issuer = InternalTokenIssuer.from_pem_file(settings.signing_keys_file, issuer="", ttl_s=60)
    kids = [key["kid"] for key in issuer.jwks()["keys"]]
    print(f"signing with {kids[0]}; still published: {', '.join(kids[1:]) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
