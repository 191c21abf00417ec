"""``clinical admin ...``: operator commands, run in this process with a service's settings.

- ``rebuild <read model>``: drop a service's read models and replay their topics from offset 0
  (``python -m <service>.entrypoints.projector --rebuild``); stop its projections first.
- ``replay-dead-letters <read model>``: apply again the events its projections set aside.
- ``verify [--topic T]``: every hash chain and signed checkpoint, with the audit service's
  settings (its Kafka principal reads every log, its Vault token verifies signatures).
- ``rewrap``: every wrapped data key under the latest version of the PHI key-encryption key.

No service exposes these as RPCs, so they need what the service needs: its settings in the
environment (`localinfra env <service>` prints them locally). Each draws progress bars on stderr
and prints its summary on stdout; docs/cli.md lists them and their exit codes.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from clinical_cli.commands.admin_runs import (
    AUDIT_SETTINGS,
    failed_partitions,
    rewrap_keys,
    verify_topics,
)
from clinical_cli.errors import CommandError, ExitCode, UsageError
from clinical_cli.output import OutputFormat
from clinical_cli.progress import progress_bars
from clinical_cli.session import Session
from clinical_platform.settings import BaseServiceSettings, SettingsError, load_settings

app = typer.Typer(help="Operator commands (run where the service's settings are).",
                  no_args_is_help=True)  # fmt: skip

# Read model -> (settings class, projections of those settings): the services' projector modules.
READ_MODELS = {
    "patient": ("patient.settings:PatientSettings", "patient.bootstrap:patient_projections"),
    "orders": ("orders.settings:OrdersSettings", "orders.bootstrap:orders_projections"),
    "results": ("results.settings:ResultsSettings", "results.bootstrap:results_projections"),
}
ReadModelArgument = Annotated[str, typer.Argument(
    metavar="READ_MODEL", help=f"The service whose read models: {', '.join(READ_MODELS)}.")
]  # fmt: skip
OnlyOption = Annotated[list[str] | None, typer.Option(
    "--only", help="Only this projection (its name, e.g. <log>.orders), repeatable.")]  # fmt: skip


class FindingError(CommandError):
    """A command that ran to its end with a finding scripts must tell apart: its own exit code
    (9: the log failed verification, 10: dead letters failed again)."""

    def __init__(self, status: str, message: str, exit_code: ExitCode) -> None:
        super().__init__(status, message)
        self._exit_code = exit_code

    @property
    def exit_code(self) -> ExitCode:
        return self._exit_code


@app.command()
def rebuild(
    ctx: typer.Context, read_model: ReadModelArgument, only: OnlyOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:  # fmt: skip
    """Drop the read models and replay their topics from the start (stop the projections first)."""
    from clinical_platform.projections.entrypoint import project  # noqa: PLC0415
    from clinical_platform.projections.rebuild import RebuildError  # noqa: PLC0415

    session = Session.of(ctx)
    with session.failures():
        settings, projections = _read_model(read_model, only or [])
        if not yes:
            names = ", ".join(p.name for p in projections)
            typer.confirm(f"Drop and rebuild {names}?", abort=True, err=True)
        with progress_bars(session.errors, "offsets") as advance, _server_failures("rebuild"):

            def told(name: str, done: int, total: int) -> None:
                advance(f"rebuild {name}", done, total)

            try:
                replayed = asyncio.run(
                    project(settings, projections, rebuild=True, on_progress=told))  # fmt: skip
            except RebuildError as refused:
                raise CommandError("FAILED_PRECONDITION", str(refused)) from None
    session.show({"read_model": read_model, "projections": [p.name for p in projections],
                  "events_replayed": replayed})  # fmt: skip


@app.command("replay-dead-letters")
def replay_dead_letters(ctx: typer.Context, read_model: ReadModelArgument,
                        only: OnlyOption = None) -> None:  # fmt: skip
    """Apply again the events the projections set aside on their dead-letter topics."""
    from clinical_platform.projections.replay import replay_read_model  # noqa: PLC0415

    session = Session.of(ctx)
    with session.failures():
        settings, projections = _read_model(read_model, only or [])
        with progress_bars(session.errors, "events") as advance, _server_failures("replay"):

            def told(name: str, done: int, total: int) -> None:
                advance(f"replay {name}", done, total)

            reports = asyncio.run(replay_read_model(settings, projections, on_progress=told))
    rows = [vars(report) for report in reports]
    _show(session, {"read_model": read_model, "projections": rows}, rows)
    failing = sum(report.still_failing for report in reports)
    if failing:
        replayed = sum(report.replayed for report in reports)
        msg = (f"{failing} of {replayed} dead letters failed again; they are back on the "
               "dead-letter topics for the next replay")  # fmt: skip
        session.fail(FindingError("STILL_FAILING", msg, ExitCode.DEAD_LETTERS_STILL_FAILING))


@app.command()
def verify(
    ctx: typer.Context,
    topic: Annotated[list[str] | None, typer.Option(
        "--topic", help="An event topic to verify, repeatable (default: every event topic).")
    ] = None,
) -> None:  # fmt: skip
    """Verify every hash chain and signed checkpoint of the event topics (audit's settings)."""
    session = Session.of(ctx)
    with session.failures():
        settings = _settings(_load(AUDIT_SETTINGS))
        with progress_bars(session.errors, "offsets") as advance, _server_failures("verify"):
            rows = asyncio.run(verify_topics(settings, topic or [], advance))
    _show(session, {"ok": not failed_partitions(rows), "partitions": rows}, rows)
    for row in failed_partitions(rows)[:1]:
        msg = (f"{row['topic']} partition {row['partition']}: first bad offset "
               f"{row['first_bad_offset']}: {row['reason']}")  # fmt: skip
        session.fail(FindingError("DATA_LOSS", msg, ExitCode.LOG_VERIFICATION_FAILED))


@app.command()
def rewrap(ctx: typer.Context) -> None:
    """Rewrap every patient's data key under the latest version of the PHI key (Transit)."""
    session = Session.of(ctx)
    with session.failures():
        # The shared VAULT_* variables only: no service of its own, so no port to name.
        settings = _settings(BaseServiceSettings, grpc_port=0)
        with progress_bars(session.errors, "keys") as advance, _server_failures("rewrap"):
            summary = asyncio.run(rewrap_keys(settings, advance))
    session.show(summary)


def _show(session: Session, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The whole summary for scripts; for people, a row per partition or projection."""
    session.show(summary if session.output is OutputFormat.JSON else {"rows": rows})


@contextmanager
def _server_failures(command: str) -> Iterator[None]:
    """A server away or refusing, in one line: the class only, since a driver's message may
    quote a connection string with a password; Vault's reasons are the kernel's own words."""
    # Imported here: the services' stack (Kafka, MongoDB, Vault clients) is only for operators.
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from hvac.exceptions import VaultError  # noqa: PLC0415
    from pymongo.errors import PyMongoError  # noqa: PLC0415

    from clinical_platform.security.errors import KeyServiceUnavailableError  # noqa: PLC0415

    try:
        yield
    except SettingsError as invalid:
        raise UsageError(f"invalid settings: {invalid}") from None
    except KeyServiceUnavailableError as refused:
        if refused.reason.endswith("permission denied"):
            msg = f"Vault refused the {command}: {refused.reason} (docs/cli.md names the policy)"
            raise CommandError("PERMISSION_DENIED", msg) from None
        raise CommandError("UNAVAILABLE", str(refused)) from None
    except (OSError, KafkaError, PyMongoError, VaultError) as unreachable:
        msg = f"a server the {command} needs did not answer ({type(unreachable).__name__})"
        raise CommandError("UNAVAILABLE", msg) from None


def _read_model(name: str, only: list[str]) -> tuple[Any, list[Any]]:
    """The service's settings and its chosen projections."""
    if name not in READ_MODELS:
        msg = f"no read model {name!r}: choose from {', '.join(READ_MODELS)}"
        raise UsageError(msg)
    settings_path, projections_path = READ_MODELS[name]
    settings = _settings(_load(settings_path))
    projections_of: Callable[[Any], Sequence[Any]] = _load(projections_path)
    return settings, _chosen(projections_of(settings), only)


def _settings(settings_type: type[Any], **values: Any) -> Any:
    try:
        return load_settings(settings_type, **values)
    except SettingsError as invalid:
        # One line naming each bad variable, exit 2: as the service itself would.
        raise UsageError(f"invalid settings: {invalid}") from None


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
