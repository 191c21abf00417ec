"""Each profile's tokens, cached in ``<config dir>/tokens/<profile>.json`` (mode 0600), and
refreshed with the refresh token when the access token has expired."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinical_cli.errors import CommandError
from clinical_cli.profiles import config_dir, write_private

# A token this close to expiry is refreshed first: the call itself takes time.
EXPIRY_MARGIN_S = 15


@dataclass(frozen=True)
class CachedTokens:
    access_token: str
    expires_at: float
    refresh_token: str = ""
    refresh_expires_at: float = 0.0
    client_id: str = ""

    @classmethod
    def from_token_response(cls, body: dict[str, Any], client_id: str,
                            now: float | None = None) -> CachedTokens:  # fmt: skip
        now = time.time() if now is None else now
        refresh_in = float(body.get("refresh_expires_in") or 0)
        return cls(
            access_token=str(body["access_token"]),
            expires_at=now + float(body.get("expires_in") or 60),
            refresh_token=str(body.get("refresh_token") or ""),
            refresh_expires_at=now + refresh_in if refresh_in else 0.0,
            client_id=client_id,
        )

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at - EXPIRY_MARGIN_S

    def refreshable(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        # Keycloak's offline tokens say refresh_expires_in 0: no expiry of their own.
        return bool(self.refresh_token) and (not self.refresh_expires_at
                                             or now < self.refresh_expires_at)  # fmt: skip


def token_file(profile: str, folder: Path | None = None) -> Path:
    return (folder or config_dir()) / "tokens" / f"{profile}.json"


def save_tokens(profile: str, tokens: CachedTokens, folder: Path | None = None) -> Path:
    path = token_file(profile, folder)
    write_private(path, json.dumps(asdict(tokens)))
    return path


def load_tokens(profile: str, folder: Path | None = None) -> CachedTokens:
    path = token_file(profile, folder)
    try:
        return CachedTokens(**json.loads(path.read_text()))
    except FileNotFoundError:
        msg = f"not logged in to profile {profile!r}: clinical login"
        raise CommandError("UNAUTHENTICATED", msg) from None
    except (ValueError, TypeError):
        msg = f"the token cache {path} is unreadable: clinical login again"
        raise CommandError("UNAUTHENTICATED", msg) from None


def forget_tokens(profile: str, folder: Path | None = None) -> bool:
    path = token_file(profile, folder)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
