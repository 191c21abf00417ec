"""One invocation's choices (profile, output, gateway or direct, token) and what it connects
through: the commands' only way to the platform."""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

from clinical_cli.api import Json, PlatformApi
from clinical_cli.direct import DirectApi
from clinical_cli.errors import CommandError, UsageError
from clinical_cli.gateway import GatewayApi
from clinical_cli.login import OidcClient
from clinical_cli.output import OutputFormat, render
from clinical_cli.profiles import Profile, load_profile
from clinical_cli.rpcs import Rpc
from clinical_cli.tokens import load_tokens, save_tokens


def connect(session: Session, token: str) -> PlatformApi:
    """The real connections: the gateway over HTTP, or each service's gRPC port."""
    if session.direct:
        return DirectApi(session.profile.address_of(), token)
    return GatewayApi(session.profile.gateway, token)


@dataclass
class Wiring:
    """What commands connect through; tests hand their own to CliRunner as ``obj``."""

    api: Callable[[Session, str], PlatformApi] = connect
    oidc_transport: httpx.BaseTransport | None = None
    open_browser: Callable[[str], Any] = webbrowser.open


@dataclass
class Session:
    profile_name: str
    profile: Profile
    output: OutputFormat
    direct: bool
    explicit_token: str | None
    wiring: Wiring = field(default_factory=Wiring)
    console: Console = field(default_factory=Console)
    errors: Console = field(default_factory=lambda: Console(stderr=True))
    _api: PlatformApi | None = None

    @classmethod
    def of(cls, ctx: typer.Context) -> Session:
        session = ctx.find_object(Session)
        if session is None:  # only when a command is invoked without the root callback
            raise RuntimeError("no session")
        return session

    def oidc(self) -> OidcClient:
        return OidcClient(self.profile, transport=self.wiring.oidc_transport)

    def token(self) -> str:
        """``--token``/``CLINICAL_TOKEN``, else the profile's cached token (refreshed when it
        has expired). A service trusts no Keycloak token: direct calls need an explicit one."""
        if self.explicit_token:
            return self.explicit_token
        if self.direct:
            msg = ("direct calls need a token the service trusts: --token or CLINICAL_TOKEN "
                   "(locally: make -s token ROLE=...)")  # fmt: skip
            raise CommandError("UNAUTHENTICATED", msg)
        tokens = load_tokens(self.profile_name)
        if tokens.fresh():
            return tokens.access_token
        if not tokens.refreshable():
            msg = f"the login of profile {self.profile_name!r} has expired: clinical login"
            raise CommandError("UNAUTHENTICATED", msg)
        refreshed = self.oidc().refresh(tokens)
        save_tokens(self.profile_name, refreshed)
        return refreshed.access_token

    def api(self) -> PlatformApi:
        if self._api is None:
            self._api = self.wiring.api(self, self.token())
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def call(self, rpc: Rpc, request: Json) -> Json:
        with self.failures(sent=request):
            return self.api().call(rpc, request)
        raise AssertionError("unreachable")  # failures() exits; mypy cannot see it

    def show(self, answer: Json) -> None:
        render(answer, self.output, self.console)

    @contextmanager
    def failures(self, sent: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Turn a refused or failed call into its one line on stderr and its exit code."""
        try:
            yield
        except CommandError as failed:
            self.fail(failed, sent)

    def fail(self, failed: CommandError, sent: Mapping[str, Any] | None = None) -> NoReturn:
        self.errors.print(failed.line(sent), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(int(failed.exit_code))


def start_session(ctx: typer.Context, *, profile: str, output: OutputFormat, direct: bool,
                  token: str | None) -> Session:  # fmt: skip
    wiring = ctx.obj if isinstance(ctx.obj, Wiring) else Wiring()
    errors = Console(stderr=True)
    try:
        loaded = load_profile(profile)
    except CommandError as failed:
        errors.print(failed.line(), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(int(failed.exit_code)) from None
    session = Session(profile, loaded, output, direct, token or os.environ.get("CLINICAL_TOKEN"),
                      wiring, errors=errors)  # fmt: skip
    ctx.obj = session
    ctx.call_on_close(session.close)
    return session


def read_secret_from_stdin() -> str:
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise UsageError("--password-stdin: standard input held no password")
    return line
