"""Production mode: with ENVIRONMENT=production a service refuses to start on insecure settings.

Every check names the variable to fix and why, one line each, never a secret's value; the
process prints them all to stderr and exits 2 (the usage-error status: do not retry). A service
adds its own checks by overriding `BaseServiceSettings.production_refusals` (notify refuses
plain-http webhooks, the gateway a plain-http identity provider). The table of checks is in
docs/security.md, "Production mode".
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import hvac
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hvac import exceptions as vault

from clinical_platform.audiences import DEFAULT_MAX_LIFETIME_S
from clinical_platform.devtokens import DEFAULT_KEY_DIR
from clinical_platform.settings import BaseServiceSettings, exit_with_usage_error
from clinical_platform.tokens import public_keys_in

logger = logging.getLogger(__name__)

# Where `make run` keeps the development signing key: beside the working directory, and in the
# checkout this package runs from (an editable install: libs/platform/src/clinical_platform; an
# installed package has no checkout above it, and then no second place to look).
_CHECKOUT = Path(__file__).resolve().parents[4:5]
DEV_KEY_FILES = tuple(root / DEFAULT_KEY_DIR / "public.pem" for root in (Path(), *_CHECKOUT))

VaultPolicies = Callable[[BaseServiceSettings], Sequence[str]]


class VaultTokenUncheckedError(Exception):
    """Vault could not say which policies the token holds (the reason, no token)."""


def vault_token_policies(settings: BaseServiceSettings) -> Sequence[str]:
    """The policies of VAULT_TOKEN, from Vault's token lookup-self."""
    token = settings.vault_token.get_secret_value() if settings.vault_token else ""
    client = hvac.Client(url=settings.vault_addr, token=token,
                         timeout=settings.vault_timeout_seconds)  # fmt: skip
    try:
        data = client.auth.token.lookup_self()["data"]
    except vault.Forbidden:
        raise VaultTokenUncheckedError("Vault refused the token") from None
    except (vault.VaultError, requests.RequestException) as failed:
        raise VaultTokenUncheckedError(f"Vault did not answer ({type(failed).__name__})") from None
    return [str(policy) for policy in data.get("policies") or ()]


def production_refusals(
    settings: BaseServiceSettings,
    *,
    vault_policies: VaultPolicies = vault_token_policies,
    dev_key_files: Sequence[Path] = DEV_KEY_FILES,
) -> list[str]:
    """Every reason ``settings`` are unfit for production, one line each (empty: fit)."""
    checks = (
        _plaintext_grpc(settings),
        _reflection_beyond_loopback(settings),
        _development_signing_key(settings, dev_key_files),
        _key_set_in_the_clear(settings),
        _long_lived_tokens(settings),
        _vault_in_the_clear(settings),
        _root_vault_token(settings, vault_policies),
        _kafka_without_sasl_ssl(settings),
        _mongodb_in_the_clear(settings),
        _mongodb_certificates_unchecked(settings),
    )
    return [refusal for refusal in checks if refusal] + list(settings.production_refusals())


def refuse_insecure_settings_or_exit(
    settings: BaseServiceSettings, *, vault_policies: VaultPolicies = vault_token_policies
) -> None:
    """In production mode, exit 2 with one stderr line per insecure setting; else return."""
    if settings.environment != "production":
        return
    refusals = production_refusals(settings, vault_policies=vault_policies)
    if refusals:
        exit_with_usage_error("\n".join(f"production mode: {r}" for r in refusals))
    logger.info("production mode: every setting checked")


def _plaintext_grpc(settings: BaseServiceSettings) -> str | None:
    files = ("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_ca_file")
    missing = [settings.variable_for(f) for f in files if getattr(settings, f) is None]
    if not missing:
        return None
    return f"{', '.join(missing)}: unset; gRPC must be mutual TLS, plaintext is refused"


def _reflection_beyond_loopback(settings: BaseServiceSettings) -> str | None:
    if not settings.grpc_reflection or _is_loopback(settings.grpc_host):
        return None
    variable = settings.variable_for("grpc_reflection")
    return f"{variable}: reflection on a non-loopback host hands the API's map to any caller"


def _development_signing_key(
    settings: BaseServiceSettings, dev_key_files: Sequence[Path]
) -> str | None:
    try:
        trusted = {_raw(key) for key in public_keys_in(settings.jwt_public_keys)}
    except ValueError:
        return "JWT_PUBLIC_KEYS: not a bundle of Ed25519 public keys (PEM)"
    for path in dev_key_files:
        if path.is_file() and trusted & {_raw(k) for k in public_keys_in(path.read_text())}:
            return f"JWT_PUBLIC_KEYS: trusts the development signing key ({path})"
    return None


def _key_set_in_the_clear(settings: BaseServiceSettings) -> str | None:
    url = urlsplit(settings.jwt_jwks_url)
    if not settings.jwt_jwks_url or url.scheme == "https" or _is_loopback(url.hostname or ""):
        return None
    return "JWT_JWKS_URL: not https; whoever sits on the path could hand us signing keys"


def _long_lived_tokens(settings: BaseServiceSettings) -> str | None:
    if settings.jwt_max_lifetime_seconds <= DEFAULT_MAX_LIFETIME_S:
        return None
    return f"JWT_MAX_LIFETIME_SECONDS: above {DEFAULT_MAX_LIFETIME_S} s; stolen tokens live on"


def _vault_in_the_clear(settings: BaseServiceSettings) -> str | None:
    if urlsplit(settings.vault_addr).scheme == "https":
        return None
    return "VAULT_ADDR: not https; tokens and data keys would cross the network in the clear"


def _root_vault_token(settings: BaseServiceSettings, vault_policies: VaultPolicies) -> str | None:
    # AppRole and Kubernetes logins get the role's token; a static token may be anything.
    if settings.vault_auth_method != "token" or settings.vault_token is None:
        return None
    try:
        policies = vault_policies(settings)
    except VaultTokenUncheckedError as unchecked:
        return f"VAULT_TOKEN: could not be checked for root ({unchecked}); refusing to guess"
    if "root" in policies:
        return "VAULT_TOKEN: a root token; give the service a token of its own policy"
    return None


def _kafka_without_sasl_ssl(settings: BaseServiceSettings) -> str | None:
    protocol = settings.kafka_security_protocol
    if protocol == "SASL_SSL":
        return None
    return f"KAFKA_SECURITY_PROTOCOL: {protocol}; production speaks SASL_SSL only"


def _mongodb_in_the_clear(settings: BaseServiceSettings) -> str | None:
    scheme, hosts, options = _mongodb_url_parts(settings.mongodb_url)
    # mongodb+srv turns TLS on unless the URL turns it off; plain mongodb:// needs tls/ssl=true.
    default = "true" if scheme == "mongodb+srv" else "false"
    tls = options.get("tls", options.get("ssl", default))
    if tls == "true" or all(_is_loopback(host) for host in hosts):
        return None
    return (
        "MONGODB_URL: no TLS (tls=true) to a non-loopback host; "
        "read models would cross the network in the clear"
    )


def _mongodb_certificates_unchecked(settings: BaseServiceSettings) -> str | None:
    _, _, options = _mongodb_url_parts(settings.mongodb_url)
    unchecked = [name for name in _MONGODB_UNCHECKED_TLS if options.get(name.lower()) == "true"]
    if not unchecked:
        return None
    return f"MONGODB_URL: {', '.join(unchecked)}; anyone on the path could pose as the database"


# Each turns off a check of the server's certificate (tlsInsecure turns off all of them).
_MONGODB_UNCHECKED_TLS = ("tlsInsecure", "tlsAllowInvalidCertificates", "tlsAllowInvalidHostnames")


def _mongodb_url_parts(url: str) -> tuple[str, list[str], dict[str, str]]:
    """The scheme, host names and options (names and values lowercased) of a MongoDB URL.

    Parsed by hand: pymongo's parser resolves a mongodb+srv name in DNS, and the check must
    not depend on the network. The user and password are dropped, never returned.
    """
    scheme, _, rest = url.partition("://")
    # A URL's reserved characters in the user or password are percent-encoded, so the first
    # "?" starts the options and the first "/" ends the hosts.
    before_options, _, query = rest.partition("?")
    authority = before_options.partition("/")[0]
    hosts = [_host_name(host) for host in authority.rpartition("@")[2].split(",")]
    options = {name.lower(): value.lower() for name, value in parse_qsl(query)}
    return scheme.lower(), hosts, options


def _host_name(host: str) -> str:
    # "[::1]:27017" -> "::1"; "db:27017" -> "db"; a socket path (%2Ftmp%2Fm.sock) is local.
    host = unquote(host)
    if host.startswith("/"):
        return "localhost"
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
