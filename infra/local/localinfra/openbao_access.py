"""Least privilege in OpenBao: one policy per service from infra/vault/policies/<service>.hcl
(the files infra/terraform loads too), and one periodic token per service holding only it.

Applied on every start: the policies are written again, and a token that is missing or no
longer valid is made anew. Tokens live in `<data>/openbao/tokens/<service>` (mode 0600); the
root token stays with the operator (`make -s infra-env`), never with a service.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import REPO_ROOT, write_private
from .processes import StartupError

POLICIES = REPO_ROOT / "infra" / "vault" / "policies"
# A periodic token lives as long as its holder renews it within the period
# (clinical_platform.security.token_renewal does).
TOKEN_PERIOD = "768h"  # noqa: S105 - a duration, not a secret

Api = Callable[..., dict[str, Any] | None]


def services() -> list[str]:
    """The services with a policy file."""
    return sorted(path.stem for path in POLICIES.glob("*.hcl"))


def apply(api: Api, tokens: Path) -> None:
    """Write every policy, and make each service's token unless it has a valid one."""
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    for service in services():
        policy = (POLICIES / f"{service}.hcl").read_text()
        if api("PUT", f"sys/policies/acl/{service}", {"policy": policy}, token=True) is None:
            raise StartupError(f"OpenBao refused the policy {POLICIES / service}.hcl")
        path = tokens / service
        if path.exists() and _valid(api, path.read_text().strip()):
            continue
        write_private(path, _create_token(api, service))


def token(tokens: Path, service: str) -> str | None:
    path = tokens / service
    return path.read_text().strip() if path.exists() else None


def _valid(api: Api, candidate: str) -> bool:
    answer = api("POST", "auth/token/lookup", {"token": candidate}, token=True)
    return bool(answer and answer.get("data", {}).get("policies"))


def _create_token(api: Api, service: str) -> str:
    body = {
        "policies": [service],
        "display_name": service,
        "period": TOKEN_PERIOD,
        "renewable": True,
        # Not a child of the root token: revoking an operator's token leaves services running.
        "no_parent": True,
        "meta": {"service": service},
    }
    answer = api("POST", "auth/token/create", body, token=True)
    if not answer or "auth" not in answer:
        raise StartupError(f"OpenBao refused to make a token for {service}")
    return str(answer["auth"]["client_token"])
