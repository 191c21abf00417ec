"""``clinical``: the root command, its global options, and logging in.

Exit codes (docs/cli.md): 0 ok, 1 other failure, 2 usage, 3 authentication, 4 permission
denied, 5 not found, 6 invalid argument, 7 conflict (state or version), 8 unavailable.
"""

from __future__ import annotations

from typing import Annotated

import typer

from clinical_cli.commands import admin, fhir, orders, patient, profile, results, subscribe
from clinical_cli.commands import backup as _backup  # noqa: F401 - registers admin backup|restore
from clinical_cli.login import browser_login
from clinical_cli.output import OutputFormat
from clinical_cli.profiles import DEFAULT_PROFILE
from clinical_cli.session import Session, read_secret_from_stdin, start_session
from clinical_cli.tokens import forget_tokens, save_tokens, token_file

app = typer.Typer(
    name="clinical",
    help="The clinical record platform from the command line.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold tokens and PHI
)
app.add_typer(profile.app, name="profile")
app.add_typer(patient.app, name="patient")
app.add_typer(orders.app, name="order")
app.add_typer(results.app, name="result")
app.command("subscribe")(subscribe.subscribe)
app.add_typer(admin.app, name="admin")
app.add_typer(fhir.app, name="fhir")


@app.callback()
def root(
    ctx: typer.Context,
    profile_name: Annotated[str, typer.Option(
        "--profile", "-p", envvar="CLINICAL_PROFILE", help="Profile in the config file.")
    ] = DEFAULT_PROFILE,
    output: Annotated[OutputFormat, typer.Option(
        "--output", "-o", help="json for scripts, table for people.")
    ] = OutputFormat.TABLE,
    direct: Annotated[bool, typer.Option(
        "--direct", help="Call the service's gRPC port instead of the gateway.")
    ] = False,
    token: Annotated[str | None, typer.Option(
        "--token", help="Bearer token to send instead of the cached login (env CLINICAL_TOKEN).",
        show_default=False)
    ] = None,
) -> None:  # fmt: skip
    """Global options come before the command: clinical -o json order get ID."""
    start_session(ctx, profile=profile_name, output=output, direct=direct, token=token)


@app.command()
def login(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option(
        help="Log in with the password grant (scripted local users) instead of a browser.")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")
    ] = False,
    otp: Annotated[str | None, typer.Option(
        help="One-time code, for a user with OTP configured.")
    ] = None,
    scope: Annotated[str | None, typer.Option(
        help="Scopes to ask for (default: the profile's).")
    ] = None,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Print the login URL only, do not open a browser.")
    ] = False,
) -> None:  # fmt: skip
    """Log in and cache the tokens for the profile (mode 0600)."""
    session = Session.of(ctx)
    with session.failures():
        oidc = session.oidc()
        if username:
            if not password_stdin:
                password = typer.prompt("password", hide_input=True)
            else:
                password = read_secret_from_stdin()
            tokens = oidc.password_login(username, password, otp, scope)
        else:

            def show(url: str) -> None:
                session.errors.print(f"Log in at: {url}", markup=False, soft_wrap=True)
                if not no_browser:
                    session.wiring.open_browser(url)

            tokens = browser_login(oidc, session.profile, show, scope=scope)
        path = save_tokens(session.profile_name, tokens)
    session.errors.print(f"logged in; tokens cached in {path}", markup=False, highlight=False)


@app.command()
def logout(ctx: typer.Context) -> None:
    """Forget the profile's cached tokens."""
    session = Session.of(ctx)
    existed = forget_tokens(session.profile_name)
    where = token_file(session.profile_name)
    said = f"removed {where}" if existed else "not logged in"
    session.errors.print(said, markup=False, highlight=False)


def main() -> None:
    app()
