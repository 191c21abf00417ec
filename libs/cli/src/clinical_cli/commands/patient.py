"""``clinical patient register|get|search|match|link|forget`` (PatientService).

match, link and forget are not routed by the gateway: they need ``--direct``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clinical_cli import rpcs
from clinical_cli.commands.options import (
    MinVersion,
    RequestId,
    read_json,
    system_and_value,
    without_empty,
)
from clinical_cli.errors import UsageError
from clinical_cli.session import Session

app = typer.Typer(help="Patients: register, read, search, match, link, forget.",
                  no_args_is_help=True)  # fmt: skip


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


Family = Annotated[str, typer.Option("--family", help="Family name.")]
Given = Annotated[list[str] | None, typer.Option("--given", help="Given name, repeatable.")]
BirthDate = Annotated[str, typer.Option("--birth-date", help="YYYY-MM-DD.")]
SexOption = Annotated[Sex | None, typer.Option("--sex")]
Identifiers = Annotated[list[str] | None, typer.Option(
    "--identifier", help="SYSTEM|VALUE, repeatable.")
]  # fmt: skip
DemographicsFile = Annotated[Path | None, typer.Option(
    "--demographics", help="Demographics as JSON (protobuf's mapping); - for stdin. Flags given "
    "beside it override its fields.", allow_dash=True)
]  # fmt: skip


@app.command()
def register(
    ctx: typer.Context,
    request_id: RequestId,
    family: Family = "",
    given: Given = None,
    birth_date: BirthDate = "",
    sex: SexOption = None,
    phone: Annotated[str, typer.Option()] = "",
    email: Annotated[str, typer.Option()] = "",
    identifier: Identifiers = None,
    demographics: DemographicsFile = None,
) -> None:
    """Register a patient; the answer says whether identity matching linked a known record."""
    session = Session.of(ctx)
    with session.failures():
        record = _demographics(
            demographics, family=family, given=given, birth_date=birth_date, sex=sex,
            phone=phone, email=email, identifiers=identifier,
        )  # fmt: skip
        request = {"request_id": request_id, "demographics": record}
        session.show(session.call(rpcs.REGISTER_PATIENT, request))


@app.command()
def get(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Argument()],
    min_version: MinVersion = 0,
) -> None:
    """Read a patient's record and golden record."""
    session = Session.of(ctx)
    request = without_empty({"patient_id": patient_id, "min_version": min_version})
    session.show(session.call(rpcs.GET_PATIENT, request))


@app.command()
def search(
    ctx: typer.Context,
    family: Family = "",
    given: Annotated[str, typer.Option("--given")] = "",
    birth_date: BirthDate = "",
    identifier: Annotated[str, typer.Option(help="SYSTEM|VALUE (with --direct).")] = "",
    page_size: Annotated[int, typer.Option("--page-size")] = 0,
) -> None:
    """Search patients by name, birth date or identifier."""
    session = Session.of(ctx)
    with session.failures():
        request = without_empty({
            "family_name": family, "given_name": given, "birth_date": birth_date,
            "identifier": system_and_value(identifier, "--identifier") if identifier else None,
            "page_size": page_size,
        })  # fmt: skip
        session.show(session.call(rpcs.SEARCH_PATIENTS, request))


@app.command()
def match(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Option(
        "--patient-id", help="Match a registered patient (else the demographics given).")
    ] = "",
    family: Family = "",
    given: Given = None,
    birth_date: BirthDate = "",
    sex: SexOption = None,
    identifier: Identifiers = None,
    demographics: DemographicsFile = None,
    max_results: Annotated[int, typer.Option("--max-results")] = 0,
) -> None:  # fmt: skip
    """Candidates for the same person, with their scores and grades (``--direct``)."""
    session = Session.of(ctx)
    with session.failures():
        request: dict[str, Any] = without_empty({"max_results": max_results})
        if patient_id:
            request["patient_id"] = patient_id
        else:
            request["demographics"] = _demographics(
                demographics, family=family, given=given, birth_date=birth_date, sex=sex,
                phone="", email="", identifiers=identifier,
            )  # fmt: skip
        session.show(session.call(rpcs.FIND_MATCHES, request))


@app.command()
def link(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Argument()],
    other_patient_id: Annotated[str, typer.Argument()],
    request_id: RequestId,
) -> None:
    """Link two records of the same person (registrar; ``--direct``)."""
    session = Session.of(ctx)
    request = {"request_id": request_id, "patient_id": patient_id,
               "other_patient_id": other_patient_id}  # fmt: skip
    session.show(session.call(rpcs.LINK_PATIENTS, request))


@app.command()
def forget(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (recorded with the erasure).")],
    request_id: RequestId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a patient for good: their data key is destroyed (``--direct``)."""
    session = Session.of(ctx)
    if not yes:
        typer.confirm(f"Forget patient {patient_id} for good?", abort=True, err=True)
    request = {"request_id": request_id, "patient_id": patient_id, "reason": reason}
    session.show(session.call(rpcs.FORGET_PATIENT, request))


def _demographics(
    source: Path | None, *, family: str, given: list[str] | None, birth_date: str,
    sex: Sex | None, phone: str, email: str, identifiers: list[str] | None,
) -> dict[str, Any]:  # fmt: skip
    record: dict[str, Any] = _read_json(source) if source else {}
    name = dict(record.get("name") or {})
    name |= without_empty({"family": family, "given": given or []})
    record |= without_empty({
        "name": name, "birth_date": birth_date, "phone": phone, "email": email,
        "sex": f"ADMINISTRATIVE_SEX_{sex.name}" if sex else None,
        "identifiers": [system_and_value(i, "--identifier") for i in identifiers or []],
    })  # fmt: skip
    return record


def _read_json(source: Path) -> dict[str, Any]:
    value = read_json(source, "--demographics")
    if not isinstance(value, dict):
        msg = "--demographics: the JSON must be an object"
        raise UsageError(msg)
    return value
