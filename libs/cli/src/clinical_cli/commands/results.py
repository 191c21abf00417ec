"""``clinical result post|amend|get`` (ResultService, through the gateway or direct)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clinical_cli import rpcs
from clinical_cli.commands.options import (
    ExpectedVersion,
    MinVersion,
    RequestId,
    read_json,
    without_empty,
)
from clinical_cli.errors import UsageError
from clinical_cli.session import Session

app = typer.Typer(help="Results: post, amend or correct, read.", no_args_is_help=True)


class Kind(StrEnum):
    AMENDMENT = "amendment"
    CORRECTION = "correction"


Quantities = Annotated[list[str] | None, typer.Option(
    "--quantity", metavar="'CODE=VALUE UNIT'",
    help="A measured observation, repeatable: --quantity '2823-3=4.1 mmol/L'.")
]  # fmt: skip
Texts = Annotated[list[str] | None, typer.Option(
    "--text", metavar="'CODE=TEXT'", help="A narrative observation, repeatable.")
]  # fmt: skip
ObservationsFile = Annotated[Path | None, typer.Option(
    "--observations", help="A JSON list of Observation (protobuf's mapping); - for stdin.",
    allow_dash=True)
]  # fmt: skip
ResultId = Annotated[str, typer.Argument()]


@app.command()
def post(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Option("--order-id", help="The signed order resulted.")],
    request_id: RequestId,
    quantity: Quantities = None,
    text: Texts = None,
    observations: ObservationsFile = None,
    order_min_version: Annotated[int, typer.Option(
        "--order-min-version", help="Wait until results has seen the order at this version "
        "(the version `clinical order sign` answered).")
    ] = 0,
) -> None:  # fmt: skip
    """Post the result of a signed order."""
    session = Session.of(ctx)
    with session.failures():
        request: dict[str, Any] = {
            "request_id": request_id, "order_id": order_id,
            "observations": _observations(quantity, text, observations),
        }  # fmt: skip
        if order_min_version:
            request["order_min_version"] = str(order_min_version)
        session.show(session.call(rpcs.POST_RESULT, request))


@app.command()
def amend(
    ctx: typer.Context,
    result_id: ResultId,
    reason: Annotated[str, typer.Option(help="Why the result changes.")],
    request_id: RequestId,
    kind: Annotated[Kind, typer.Option()] = Kind.AMENDMENT,
    quantity: Quantities = None,
    text: Texts = None,
    observations: ObservationsFile = None,
    expected_version: ExpectedVersion = None,
) -> None:
    """Amend (new information) or correct (an error) a result's observations."""
    session = Session.of(ctx)
    with session.failures():
        request: dict[str, Any] = {
            "request_id": request_id, "result_id": result_id, "reason": reason,
            "kind": f"REVISION_KIND_{kind.name}",
            "observations": _observations(quantity, text, observations),
        }  # fmt: skip
        if expected_version is not None:
            request["expected_version"] = str(expected_version)
        session.show(session.call(rpcs.AMEND_RESULT, request))


@app.command()
def get(ctx: typer.Context, result_id: ResultId, min_version: MinVersion = 0) -> None:
    """Read a result with its revisions."""
    session = Session.of(ctx)
    request = without_empty({"result_id": result_id, "min_version": min_version})
    session.show(session.call(rpcs.GET_RESULT, request))


def _observations(
    quantities: list[str] | None, texts: list[str] | None, source: Path | None
) -> list[dict[str, Any]]:
    listed = _read_json_list(source) if source else []
    for quantity in quantities or []:
        code, measured = _code_and_rest(quantity, "--quantity")
        value, _, unit = measured.partition(" ")
        listed.append(
            {"code": code, "quantity": without_empty({"value": value, "unit": unit.strip()})}
        )
    for text in texts or []:
        code, narrative = _code_and_rest(text, "--text")
        listed.append({"code": code, "text": narrative})
    if not listed:
        msg = "give at least one observation: --quantity, --text or --observations"
        raise UsageError(msg)
    return listed


def _code_and_rest(text: str, option: str) -> tuple[str, str]:
    code, equals, rest = text.partition("=")
    if not equals or not code.strip() or not rest.strip():
        msg = f"{option} takes CODE=VALUE"
        raise UsageError(msg)
    return code.strip(), rest.strip()


def _read_json_list(source: Path) -> list[dict[str, Any]]:
    value = read_json(source, "--observations")
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        msg = "--observations: the JSON must be a list of objects"
        raise UsageError(msg)
    return value
