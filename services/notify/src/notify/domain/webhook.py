"""A subscription's webhook: its URL rules and its signing secrets."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


@dataclass(frozen=True)
class WebhookSecret:
    """A signing secret as the log holds it: encrypted by the notify service's Transit key."""

    ciphertext: str
    valid_until: datetime | None = None  # None: the current secret


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why a webhook URL is unacceptable, or None."""
    if len(url) > MAX_URL_CHARS:
        return f"is longer than {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "is not a URL"
    allowed = ("https", "http") if allow_http else ("https",)
    problems = (
        (
            parts.scheme not in allowed,
            "must be an http(s) URL" if allow_http else "must be an https URL",
        ),
        (not parts.hostname, "has no host"),
        (bool(parts.username or parts.password), "must not carry credentials"),
        (bool(parts.fragment), "must not have a fragment"),
    )
    return next((problem for broken, problem in problems if broken), None)
