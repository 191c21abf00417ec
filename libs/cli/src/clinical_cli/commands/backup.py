"""``clinical admin backup <dir>`` and ``clinical admin restore <dir>``: the system of record
copied to a folder (topics as stored, ciphertext; the key store's wrapped keys) and back into
an empty cluster, with a progress bar per topic (offsets, elapsed, ETA) (docs/backup.md).

Both run as the operator: Kafka's admin principal and a Vault token that reads (backup) or
writes (restore) the key store mount, from the environment (`make -s infra-env` locally). The
Kafka and Vault work lives in `clinical_platform.backup`; this module only maps its outcomes to
exit codes: a target that is not empty or a backup whose files differ from its manifest, 7
(FAILED_PRECONDITION); missing settings, 2; a server that does not answer, 8.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from clinical_cli.commands.admin import app
from clinical_cli.errors import CommandError, UsageError
from clinical_cli.progress import Advance, progress_bars
from clinical_cli.session import Session
from clinical_platform.settings import SettingsError

T = TypeVar("T")


@app.command()
def backup(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(
        metavar="DIR", help="A new or empty folder (an object store bucket mounted there).")],
    event_log: Annotated[list[str] | None, typer.Option(
        "--event-log", help="An event log to copy (clinical.<log>.events.v1 and its .layout and "
        ".dlq), repeatable; default: patient, orders, results, notify.")] = None,
    access_topic: Annotated[list[str] | None, typer.Option(
        "--access-topic",
        help="An access trail topic, repeatable; default: clinical.audit.access.v1.")
    ] = None,
    key_store_mount: Annotated[str, typer.Option(
        "--key-store-mount", envvar="VAULT_KEY_STORE_MOUNT",
        help="The KV v2 mount of wrapped keys.")
    ] = "clinical-keys",
) -> None:  # fmt: skip
    """Copy every event, layout, access and checkpoint topic and the key store into DIR."""
    from clinical_platform.backup import ACCESS_TOPICS, EVENT_LOGS, BackupPlan, back_up  # noqa: PLC0415

    session = Session.of(ctx)
    with session.failures():
        servers = _servers()
        plan = BackupPlan(event_log or list(EVENT_LOGS), access_topic or list(ACCESS_TOPICS),
                          key_store_mount)  # fmt: skip
        started = time.monotonic()
        manifest = _with_progress(session, "back up", lambda advance: back_up(
            folder, servers.kafka, servers.vault, plan, advance))  # fmt: skip
    session.show(_summary(folder, manifest, time.monotonic() - started))


@app.command()
def restore(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder `admin backup` wrote.")],
    key_store_mount: Annotated[str, typer.Option(
        "--key-store-mount", envvar="VAULT_KEY_STORE_MOUNT",
        help="The KV v2 mount to write the wrapped keys to (created when missing).")
    ] = "clinical-keys",
    replication_factor: Annotated[int, typer.Option(
        envvar="KAFKA_REPLICATION_FACTOR", min=1, help="Of the topics created.")] = 1,
    min_insync_replicas: Annotated[int, typer.Option(
        envvar="KAFKA_MIN_INSYNC_REPLICAS", min=1, help="Of the topics created.")] = 1,
) -> None:  # fmt: skip
    """Restore DIR into an empty cluster and key store: every record at its offset."""
    from clinical_platform.backup import RestorePlan  # noqa: PLC0415
    from clinical_platform.backup import restore as restore_backup  # noqa: PLC0415

    session = Session.of(ctx)
    with session.failures():
        if not folder.is_dir():
            raise UsageError("DIR is not a folder")
        servers = _servers()
        plan = RestorePlan(key_store_mount, replication_factor, min_insync_replicas)
        started = time.monotonic()
        manifest = _with_progress(session, "restore", lambda advance: restore_backup(
            folder, servers.kafka, servers.vault, plan, advance))  # fmt: skip
    session.show(_summary(folder, manifest, time.monotonic() - started))


def _servers() -> Any:
    from clinical_platform.backup.operator import operator_servers  # noqa: PLC0415

    try:
        return operator_servers()
    except SettingsError as invalid:
        raise UsageError(f"invalid settings: {invalid}") from None


def _summary(folder: Path, manifest: Any, seconds: float) -> dict[str, Any]:
    store = manifest.key_store
    return {
        "folder": str(folder),
        "topics": {t.name: t.records for t in manifest.topics},
        "records": manifest.records,
        "wrapped_keys": store.patients if store else 0,
        "forgotten": store.forgotten if store else 0,
        "seconds": round(seconds, 3),
    }


def _with_progress(
    session: Session, verb: str, work: Callable[[Advance], Coroutine[Any, Any, T]]
) -> T:
    with progress_bars(session.errors, "offsets") as bars, _mapped_failures():

        def advance(name: str, done: int, total: int) -> None:
            bars(f"{verb} {name}", done, total)

        return asyncio.run(work(advance))


@contextmanager
def _mapped_failures() -> Iterator[None]:
    # Imported here: the Kafka and Vault clients are only for operators.
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from clinical_platform.backup import (  # noqa: PLC0415
        BackupTargetError,
        KeyStoreConflictError,
        ManifestError,
        OffsetLayoutError,
        RestoreDivergedError,
        RestoreRefusedError,
    )
    from clinical_platform.security.errors import KeyServiceUnavailableError  # noqa: PLC0415

    try:
        yield
    except (BackupTargetError, ManifestError, OffsetLayoutError, RestoreRefusedError) as refused:
        raise CommandError("FAILED_PRECONDITION", str(refused)) from None
    except (RestoreDivergedError, KeyStoreConflictError) as diverged:
        raise CommandError("ABORTED", str(diverged)) from None
    except SettingsError as invalid:
        raise UsageError(f"invalid settings: {invalid}") from None
    except KeyServiceUnavailableError as unavailable:
        raise CommandError("UNAVAILABLE", str(unavailable)) from None
    except (OSError, KafkaError, TimeoutError) as unreachable:
        # The class only: a driver's message may quote a connection string with a password.
        msg = f"a server the command needs did not answer ({type(unreachable).__name__})"
        raise CommandError("UNAVAILABLE", msg) from None
