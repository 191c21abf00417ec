"""Calls through the gateway's HTTP API (`/api/v1/...`) with the profile's Keycloak token."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx

from clinical_cli.api import Json
from clinical_cli.errors import CommandError, FieldViolation, UsageError
from clinical_cli.rpcs import Rpc

# The gateway's own refusals (no token, scopes, rate, body size) carry no gRPC code name.
STATUS_OF_HTTP = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}  # fmt: skip
GRPC_CODE_NAMES = frozenset({
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
})  # fmt: skip


class GatewayApi:
    """`PlatformApi` over the gateway; ``transport`` lets tests answer without a server."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        self._base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self._base_url, timeout=timeout_s, transport=transport,
            headers={"authorization": f"Bearer {token}", "user-agent": "clinical-cli/0.1"},
        )  # fmt: skip

    def call(self, rpc: Rpc, request: Json) -> Json:
        if rpc.http_method is None or rpc.http_path is None:
            msg = f"the gateway does not route {rpc.method}: add --direct"
            raise UsageError(msg)
        path, rest = _fill_path(rpc.http_path, request)
        try:
            if rpc.http_method == "GET":
                answer = self._client.get(path, params=_query(rpc, rest))
            else:
                answer = self._client.post(path, json=rest)
        except httpx.TimeoutException:
            raise CommandError("DEADLINE_EXCEEDED", "the gateway did not answer in time") from None
        except httpx.TransportError:
            msg = f"cannot reach the gateway at {self._base_url}"
            raise CommandError("UNAVAILABLE", msg) from None
        return _answer(answer)

    def stream(self, rpc: Rpc, request: Json) -> Iterator[Json]:
        msg = f"the gateway does not route {rpc.method}: add --direct"
        raise UsageError(msg)

    def close(self) -> None:
        self._client.close()


def _fill_path(template: str, request: Json) -> tuple[str, Json]:
    rest = dict(request)
    path = template
    while "{" in path:
        name = path[path.index("{") + 1 : path.index("}")]
        value = str(rest.pop(name, ""))
        if not value:
            msg = f"{name} is required"
            raise UsageError(msg)
        path = path.replace(f"{{{name}}}", urllib.parse.quote(value, safe=""))
    return path, rest


def _query(rpc: Rpc, values: Json) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            msg = f"{rpc.method} through the gateway cannot take {name}: add --direct"
            raise UsageError(msg)
        query[name] = value
    return query


def _answer(answer: httpx.Response) -> Json:
    try:
        body: Any = answer.json()
    except ValueError:
        body = None
    if answer.status_code == 200 and isinstance(body, dict):
        return body
    if answer.status_code == 200:
        raise CommandError("UNKNOWN", "the gateway answered something other than a JSON object")
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error", "")).upper()
    status = code if code in GRPC_CODE_NAMES else STATUS_OF_HTTP.get(answer.status_code)
    message = str(body.get("message") or f"HTTP {answer.status_code}")
    if code and code not in GRPC_CODE_NAMES:
        message = f"{message} ({body['error']})"
    violations = [
        FieldViolation(str(d.get("field", "")), str(d.get("description", "")))
        for d in body.get("details") or []
        if isinstance(d, dict)
    ]
    raise CommandError(status or "UNKNOWN", message, violations)
