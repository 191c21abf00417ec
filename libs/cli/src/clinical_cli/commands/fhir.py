"""``clinical fhir export DIR`` and ``clinical fhir import DIR``: the exit strategy, both ways
(docs/fhir-bulk-export.md). Both go through the gateway named by the profile or ``--base``.

``export`` needs a backend service's token with ``system/*.rs`` (``--token``, e.g. the
``bulk-export-system`` client's); ``import`` a clinician's MFA login (registers, orders, signs)
as the session's token and a laboratory token (``--lab-token`` or ``CLINICAL_LAB_TOKEN``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
import typer

from clinical_cli.errors import CommandError
from clinical_cli.fhir_export import BulkExportError, download_export
from clinical_cli.fhir_import import FhirImport
from clinical_cli.session import Session

app = typer.Typer(help="FHIR bulk export to a folder, and import of one.", no_args_is_help=True)

Folder = Annotated[Path, typer.Argument(help="The export's folder (NDJSON per type).")]
Base = Annotated[str, typer.Option(
    "--base", help="The gateway's root URL (default: the profile's gateway).")
]  # fmt: skip
TIMEOUT_S = 60.0


@app.command("export")
def export(
    ctx: typer.Context,
    folder: Folder,
    base: Base = "",
    types: Annotated[str, typer.Option("--type", help="_type, e.g. Patient,Observation")] = "",
) -> None:
    """Kick off $export, wait for it, and write its files into FOLDER."""
    session = Session.of(ctx)
    root = (base or session.profile.gateway).rstrip("/")
    with session.failures():
        token = session.token()

        async def run() -> dict[str, object]:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=headers, timeout=TIMEOUT_S) as http:
                query = f"_type={types}" if types else ""
                return await download_export(http, f"{root}/fhir/r4", folder, query=query)

        try:
            manifest = asyncio.run(run())
        except BulkExportError as failed:
            raise CommandError("UNAVAILABLE", str(failed)) from None
        session.show({"transactionTime": manifest["transactionTime"], "folder": str(folder)})


@app.command("import")
def import_(
    ctx: typer.Context,
    folder: Folder,
    base: Base = "",
    lab_token: Annotated[str, typer.Option(
        "--lab-token", envvar="CLINICAL_LAB_TOKEN", help="A laboratory user's or system's token "
        "(posts the results).")
    ] = "",
) -> None:  # fmt: skip
    """Import FOLDER (an export) into the platform; exit 1 if any record failed."""
    session = Session.of(ctx)
    root = (base or session.profile.gateway).rstrip("/")
    with session.failures():
        token = session.token()

        async def run() -> FhirImport:
            async with httpx.AsyncClient(base_url=root, timeout=TIMEOUT_S) as http:
                importer = FhirImport(http, clinician_token=token, lab_token=lab_token or token)
                await importer.run(folder)
                return importer

        report = asyncio.run(run()).report
        session.show({"created": report.created, "failed": len(report.failures),
                      "provenance": str(folder / "import-provenance.ndjson")})  # fmt: skip
        if report.failures:
            raise typer.Exit(1)
