"""Downloading a Bulk Data ``$export`` into a folder: one ``<Type>.ndjson`` per resource type and
the ``manifest.json`` (docs/fhir-bulk-export.md); `clinical_cli.fhir_import` reads such a folder.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anyio
import httpx

FHIR_JSON = "application/fhir+json"


class BulkExportError(Exception):
    """The export could not be kicked off, failed, or a file could not be read."""


async def download_export(http: httpx.AsyncClient, fhir_base: str, folder: Path, *,
                          query: str = "", poll_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Kick off ``$export`` at ``fhir_base``, wait for it, write each type's lines to
    ``folder/<Type>.ndjson`` and the manifest to ``folder/manifest.json``; the manifest."""
    url = f"{fhir_base.rstrip('/')}/$export" + (f"?{query}" if query else "")
    kicked = await http.get(url, headers={"Prefer": "respond-async", "Accept": FHIR_JSON})
    if kicked.status_code != 202:
        raise BulkExportError(f"kick-off answered {kicked.status_code}")
    status_url = kicked.headers["Content-Location"]
    # Polling a remote job: nothing local to wait on.
    while (status := await http.get(status_url)).status_code == 202:  # noqa: ASYNC110
        await asyncio.sleep(min(poll_s, float(status.headers.get("Retry-After", poll_s))))
    if status.status_code != 200:
        raise BulkExportError(f"the export answered {status.status_code}")
    manifest: dict[str, Any] = status.json()
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    for output in (*manifest["output"], *manifest["error"]):
        target = folder / f"{output['type']}.ndjson"
        async with http.stream("GET", output["url"],
                               headers={"Accept": "application/fhir+ndjson"}) as file:  # fmt: skip
            if file.status_code != 200:
                raise BulkExportError(f"a file answered {file.status_code}")
            async with await anyio.open_file(target, "ab") as out:
                async for chunk in file.aiter_bytes():
                    await out.write(chunk)
    await anyio.Path(folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
