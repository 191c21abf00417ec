"""``clinical profile set|show``: where a profile's gateway, identity provider and services are."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from clinical_cli.errors import UsageError
from clinical_cli.profiles import load_profile, load_profiles, save_profile
from clinical_cli.session import Session

app = typer.Typer(help="Profiles: gateway URL, issuer and service addresses.",
                  no_args_is_help=True)  # fmt: skip


@app.command("set")
def set_profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The profile to create or change.")],
    setting: Annotated[list[str], typer.Option(
        "--set", help="KEY=VALUE, repeatable: gateway, issuer, client_id, browser_client_id, "
        "callback_port, scope, patient, orders, results, notify.")
    ],
) -> None:  # fmt: skip
    """Create or change a profile; unnamed settings keep the local stack's defaults."""
    session = Session.of(ctx)
    with session.failures():
        values = dict(_key_value(each) for each in setting)
        current = load_profile(name) if name in _names() else load_profile("local")
        path = save_profile(name, current.changed(**values))
    session.errors.print(f"profile {name} saved in {path}", markup=False, highlight=False)


@app.command("show")
def show_profile(ctx: typer.Context) -> None:
    """Show the selected profile (``--profile``)."""
    session = Session.of(ctx)
    session.show({"profile": session.profile_name, **asdict(session.profile)})


def _names() -> set[str]:
    return set(load_profiles())


def _key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        msg = "--set takes KEY=VALUE"
        raise UsageError(msg)
    return key.strip(), value.strip()
