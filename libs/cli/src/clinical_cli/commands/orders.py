"""``clinical order place|sign|cancel|get`` (OrderService, through the gateway or direct)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from clinical_cli import rpcs
from clinical_cli.commands.options import ExpectedVersion, MinVersion, RequestId, without_empty
from clinical_cli.errors import UsageError
from clinical_cli.session import Session

app = typer.Typer(help="Orders: place, sign, cancel, read.", no_args_is_help=True)

CODE_SYSTEMS = {"icd10": "CODE_SYSTEM_ICD10", "snomed": "CODE_SYSTEM_SNOMED_CT"}


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


OrderId = Annotated[str, typer.Argument()]


@app.command()
def place(
    ctx: typer.Context,
    patient_id: Annotated[str, typer.Option("--patient-id")],
    test_code: Annotated[str, typer.Option("--test-code", help="LOINC code of the test.")],
    request_id: RequestId,
    priority: Annotated[Priority, typer.Option()] = Priority.ROUTINE,
    reason: Annotated[list[str] | None, typer.Option(
        help="SYSTEM:CODE, repeatable; systems icd10, snomed (icd10:N18.3).")
    ] = None,
) -> None:  # fmt: skip
    """Place an order for a test (a draft until signed)."""
    session = Session.of(ctx)
    with session.failures():
        request = {
            "request_id": request_id, "patient_id": patient_id, "test_code": test_code,
            "priority": f"PRIORITY_{priority.name}",
            "reason_codes": [_reason_code(r) for r in reason or []],
        }  # fmt: skip
        session.show(session.call(rpcs.PLACE_ORDER, request))


@app.command()
def sign(
    ctx: typer.Context,
    order_id: OrderId,
    request_id: RequestId,
    expected_version: ExpectedVersion = None,
) -> None:
    """Sign an order (orders:sign and a multi-factor login within five minutes)."""
    session = Session.of(ctx)
    request = {"request_id": request_id, "order_id": order_id}
    if expected_version is not None:
        request["expected_version"] = str(expected_version)
    session.show(session.call(rpcs.SIGN_ORDER, request))


@app.command()
def cancel(
    ctx: typer.Context,
    order_id: OrderId,
    reason: Annotated[str, typer.Option(help="Why the order is cancelled.")],
    request_id: RequestId,
    expected_version: ExpectedVersion = None,
) -> None:
    """Cancel an order that has no result yet."""
    session = Session.of(ctx)
    request = {"request_id": request_id, "order_id": order_id, "reason": reason}
    if expected_version is not None:
        request["expected_version"] = str(expected_version)
    session.show(session.call(rpcs.CANCEL_ORDER, request))


@app.command()
def get(ctx: typer.Context, order_id: OrderId, min_version: MinVersion = 0) -> None:
    """Read an order."""
    session = Session.of(ctx)
    request = without_empty({"order_id": order_id, "min_version": min_version})
    session.show(session.call(rpcs.GET_ORDER, request))


def _reason_code(text: str) -> dict[str, str]:
    system, colon, code = text.partition(":")
    if not colon or system.lower() not in CODE_SYSTEMS or not code:
        msg = "--reason takes SYSTEM:CODE with SYSTEM icd10 or snomed"
        raise UsageError(msg)
    return {"system": CODE_SYSTEMS[system.lower()], "code": code}
