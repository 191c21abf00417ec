"""Composition root of the gateway service: the one place that builds clients and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from importlib.metadata import version

import httpx
import uvicorn
from starlette.applications import Starlette

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.grpc_tls import TlsFiles
from clinical_platform.observability.http import HttpTelemetry
from clinical_platform.runtime import serve_grpc, service_runtime
from gateway.adapters.access_trail import AccessTrailRefusals, RefusalAudits
from gateway.adapters.downstream import GrpcDownstream
from gateway.adapters.export_store import MongoExportStore
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.adapters.oidc import OidcTokenVerifier
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.domain.origin import trusted_networks
from gateway.entrypoints.console.login import OidcLogin
from gateway.entrypoints.console.pages import ConsoleConfig
from gateway.entrypoints.console.sessions import ConsoleSessions
from gateway.entrypoints.fhir.export_api import Exports
from gateway.entrypoints.fhir.export_runner import ExportRunner
from gateway.entrypoints.http import build_http_app
from gateway.ports import RefusalAudit
from gateway.settings import GatewaySettings


@contextlib.asynccontextmanager
async def refusal_audit(settings: GatewaySettings) -> AsyncIterator[RefusalAudit]:
    """Log lines, plus the platform's access trail unless GATEWAY_ACCESS_TRAIL is false."""
    log = RefusalLog()
    if not settings.access_trail:
        yield log
        return
    access_log = AccessAuditLog(AccessAuditConfig.from_settings(settings, service="gateway"))
    await access_log.start()
    try:
        yield RefusalAudits(log, AccessTrailRefusals(access_log))
    finally:
        await access_log.stop()


@contextlib.asynccontextmanager
async def gateway_http_app(
    settings: GatewaySettings,
) -> AsyncIterator[tuple[Starlette, GatewayApp]]:
    """Build the gateway's adapters and its ASGI app; close them on the way out."""
    if not settings.signing_keys_file.exists():
        rotate_key_file(settings.signing_keys_file)
    tokens = InternalTokenIssuer.from_pem_file(
        settings.signing_keys_file, issuer=settings.internal_issuer,
        ttl_s=settings.internal_token_ttl_seconds,
    )  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        audit = await stack.enter_async_context(refusal_audit(settings))
        http = await stack.enter_async_context(httpx.AsyncClient())
        verifier = OidcTokenVerifier(
            issuer=settings.oidc_issuer, audience=settings.oidc_audience,
            algorithms=settings.oidc_algorithms, http=http,
            min_refresh_interval_s=settings.jwks_min_refresh_seconds,
            leeway_s=settings.token_leeway_seconds, cache_size=settings.token_cache_size,
        )  # fmt: skip
        downstream = GrpcDownstream(settings.addresses(), tls=TlsFiles.from_settings(settings))
        app = GatewayApp(
            verifier=verifier,
            mapping=IdentityMapping(mfa_acr_values=frozenset(settings.mfa_acr_values)),
            rate_limiter=WindowRateLimiter(settings.rate_limit, settings.rate_limit_storage),
            tokens=tokens,
            downstream=downstream,
            audit=audit,
            audiences=settings.audiences(),
            streams=downstream,
        )
        proxies = trusted_networks(settings.trusted_proxies)
        asgi = build_http_app(app, jwks=tokens.jwks(), max_body_bytes=settings.max_body_bytes,
                              cors_origins=settings.cors_origins,
                              console=console_config(settings, http),
                              trusted_proxies=proxies,
                              oidc_issuer=settings.oidc_issuer,
                              exports=await stack.enter_async_context(
                                  bulk_exports(settings, app)))  # fmt: skip
        try:
            yield asgi, app
        finally:
            await downstream.close()


@contextlib.asynccontextmanager
async def bulk_exports(settings: GatewaySettings, app: GatewayApp) -> AsyncIterator[Exports | None]:
    """``$export``'s jobs in the gateway's MongoDB database (docs/fhir-bulk-export.md), run
    here; None when GATEWAY_EXPORT_ENABLED is false. The client connects on first use."""
    if not settings.export_enabled:
        yield None
        return
    client = build_mongo_client(settings)
    store = MongoExportStore(client[settings.export_database])
    runner = ExportRunner(app, store, runner_id=f"gateway-{secrets.token_hex(8)}",
                          lease_s=settings.export_lease_seconds)  # fmt: skip
    try:
        yield Exports(store, runner, timedelta(seconds=settings.export_retention_seconds))
    finally:
        await runner.close()
        await client.close()


def console_config(settings: GatewaySettings, http: httpx.AsyncClient) -> ConsoleConfig:
    """The audit console's login client and sessions (docs/console.md)."""
    key = settings.console_session_key
    login = OidcLogin(issuer=settings.oidc_issuer, client_id=settings.console_client_id,
                      redirect_uri=f"{settings.console_public_url.rstrip('/')}/console/callback",
                      http=http)  # fmt: skip
    # Without a configured key, sessions end with the process anyway (they live in memory).
    sessions = ConsoleSessions(key.get_secret_value() if key else secrets.token_urlsafe(32))
    secure = settings.console_public_url.startswith("https:")
    return ConsoleConfig(login=login, sessions=sessions, topics=settings.console_topics,
                         secure_cookies=secure)  # fmt: skip


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our process: SIGTERM belongs to the gRPC server's shutdown, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(asgi: Starlette, host: str, port: int) -> EmbeddedServer:
    # The server span and RED metrics of each request (docs/observability.md).
    traced = HttpTelemetry(asgi, asgi.routes)
    # proxy_headers off: uvicorn would trust X-Forwarded-For from 127.0.0.1 by default; the edge
    # reads it from GATEWAY_TRUSTED_PROXIES only.
    config = uvicorn.Config(traced, host=host, port=port, lifespan="off", access_log=False,
                            log_config=None, server_header=False, proxy_headers=False)  # fmt: skip
    return EmbeddedServer(config)


@contextlib.asynccontextmanager
async def serving_http(asgi: Starlette, host: str, port: int) -> AsyncIterator[EmbeddedServer]:
    """``asgi`` served on host:port until the block ends (tests and tools embedding the HTTP
    side); the block starts once the server listens."""
    server = http_server(asgi, host, port)
    serving = asyncio.create_task(server.serve())
    # uvicorn says it listens by a flag only: there is nothing to await.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await serving


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway (HTTP and gRPC health) until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name="gateway", version=version("clinical-gateway")),
        gateway_http_app(settings) as (asgi, _),
    ):
        server = http_server(asgi, settings.http_host, settings.http_port)
        http_task = asyncio.create_task(server.serve())
        try:
            await serve_grpc(settings, services=[])
        finally:
            server.should_exit = True
            await http_task
