"""``clinical admin rebuild <read model>``: drop a service's read models and replay its topics
from offset 0 with a progress bar per projection (offsets replayed, rate, ETA).

It runs the rebuild of ``python -m <service>.entrypoints.projector --rebuild`` in this process,
so it needs what that needs: the service's settings in the environment (its Kafka principal,
MongoDB, Vault token; `localinfra env <service>` prints them locally), and the service's
projections stopped (a live runner would interleave newer events with the replay).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clinical_cli.errors import CommandError, UsageError
from clinical_cli.session import Session
from clinical_platform.settings import SettingsError, load_settings

app = typer.Typer(help="Operator commands (run where the service's settings are).",
                  no_args_is_help=True)  # fmt: skip

# Read model -> (settings class, projections of those settings): the services' projector modules.
READ_MODELS = {
    "patient": ("patient.settings:PatientSettings", "patient.bootstrap:patient_projections"),
    "orders": ("orders.settings:OrdersSettings", "orders.bootstrap:orders_projections"),
    "results": ("results.settings:ResultsSettings", "results.bootstrap:results_projections"),
}


@app.command()
def rebuild(
    ctx: typer.Context,
    read_model: Annotated[str, typer.Argument(
        metavar="READ_MODEL", help=f"The service whose read models to rebuild: "
        f"{', '.join(READ_MODELS)}.")],
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Rebuild only this projection (its name, e.g. <log>.orders), repeatable.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:  # fmt: skip
    """Drop the read models and replay their topics from the start (stop the projections first)."""
    session = Session.of(ctx)
    with session.failures():
        settings_type, projections_of = _read_model(read_model)
        try:
            settings = load_settings(settings_type)
        except SettingsError as invalid:
            # One line naming each bad variable, exit 2: as the service itself would.
            raise UsageError(f"invalid settings: {invalid}") from None
        projections = _chosen(projections_of(settings), only or [])
        if not yes:
            names = ", ".join(p.name for p in projections)
            typer.confirm(f"Drop and rebuild {names}?", abort=True, err=True)
        replayed = _rebuild_with_progress(session, settings, projections)
    session.show({"read_model": read_model, "projections": [p.name for p in projections],
                  "events_replayed": replayed})  # fmt: skip


def _rebuild_with_progress(session: Session, settings: Any, projections: Sequence[Any]) -> int:
    # Imported here: the services' stack (Kafka, MongoDB, Vault clients) is only for operators.
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from hvac.exceptions import VaultError  # noqa: PLC0415
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    from clinical_platform.projections.entrypoint import project  # noqa: PLC0415
    from clinical_platform.projections.rebuild import RebuildError  # noqa: PLC0415

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("offsets"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=session.errors) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"rebuild {name}", total=total)
            progress.update(tasks[name], completed=done, total=total)

        try:
            return asyncio.run(project(settings, projections, rebuild=True, on_progress=advance))
        except RebuildError as refused:
            raise CommandError("FAILED_PRECONDITION", str(refused)) from None
        except SettingsError as invalid:
            raise UsageError(f"invalid settings: {invalid}") from None
        except (OSError, KafkaError, PyMongoError, VaultError) as unreachable:
            # The class only: a driver's message may quote a connection string with a password.
            msg = f"a server the rebuild needs did not answer ({type(unreachable).__name__})"
            raise CommandError("UNAVAILABLE", msg) from None


def _read_model(name: str) -> tuple[type[Any], Callable[[Any], Sequence[Any]]]:
    if name not in READ_MODELS:
        msg = f"no read model {name!r}: choose from {', '.join(READ_MODELS)}"
        raise UsageError(msg)
    settings_path, projections_path = READ_MODELS[name]
    return _load(settings_path), _load(projections_path)


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _chosen(projections: Sequence[Any], only: list[str]) -> list[Any]:
    unknown = set(only) - {p.name for p in projections}
    if unknown:
        known = ", ".join(p.name for p in projections)
        msg = f"no such projection: {', '.join(sorted(unknown))} (the read model has {known})"
        raise UsageError(msg)
    return [p for p in projections if not only or p.name in only]
