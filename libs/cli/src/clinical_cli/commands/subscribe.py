"""``clinical subscribe --topic result.posted``: a live tail of the notify service's stream.

Creates a stream-only subscription (or follows ``--subscription``), prints one line per
notification (ids only; JSON lines with ``-o json``), and reconnects after the last sequence
printed when the stream breaks. ``--from N`` resumes after notification N. Notify is not routed
by the gateway: this needs ``--direct``.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer

from clinical_cli import rpcs
from clinical_cli.api import Json
from clinical_cli.errors import CommandError, UsageError
from clinical_cli.output import render_line
from clinical_cli.session import Session

TOPICS = {
    "order.signed": "TOPIC_ORDER_SIGNED",
    "order.cancelled": "TOPIC_ORDER_CANCELLED",
    "result.posted": "TOPIC_RESULT_POSTED",
    "result.amended": "TOPIC_RESULT_AMENDED",
}
# A broken stream is retried this often before the command gives up (a restart of notify).
RECONNECTS = 5
RECONNECT_WAIT_S = 1.0


def subscribe(
    ctx: typer.Context,
    topic: Annotated[list[str] | None, typer.Option(
        help=f"Repeatable: {', '.join(TOPICS)} (default: all).")
    ] = None,
    subscription: Annotated[str, typer.Option(
        "--subscription", help="Follow this subscription instead of creating one.")
    ] = "",
    resume_from: Annotated[int, typer.Option(
        "--from", help="Resume after this sequence number (0: from the start).")
    ] = 0,
    patient_id: Annotated[list[str] | None, typer.Option(
        "--patient-id", help="Only this patient's notifications, repeatable.")
    ] = None,
    count: Annotated[int, typer.Option(
        help="Stop after this many notifications (0: follow until interrupted).")
    ] = 0,
) -> None:  # fmt: skip
    """Follow notifications live, resumable with --subscription ID --from N."""
    session = Session.of(ctx)
    with session.failures():
        if not session.direct:
            raise UsageError("the gateway does not route notify: add --direct")
        api = session.api()
        if not subscription:
            request = {"request_id": str(uuid.uuid4()), "topics": _topics(topic or list(TOPICS)),
                       "content": "CONTENT_ID_ONLY",
                       "filter": {"patient_ids": patient_id} if patient_id else {}}  # fmt: skip
            created = api.call(rpcs.CREATE_SUBSCRIPTION, request)
            subscription = str(created["subscription"]["subscription_id"])
            session.errors.print(f"subscription {subscription}", markup=False, highlight=False)
        last = _follow(session, subscription, resume_from, count)
    session.errors.print(f"resume with: --subscription {subscription} --from {last}",
                         markup=False, highlight=False)  # fmt: skip


def _follow(session: Session, subscription: str, after: int, count: int) -> int:
    printed = 0
    failures = 0
    try:
        while True:
            request = {"subscription_id": subscription, "resume_after": str(after)}
            try:
                for answer in session.api().stream(rpcs.SUBSCRIBE, request):
                    notification = answer.get("notification")
                    if notification is None:
                        continue  # a heartbeat
                    failures = 0
                    after = int(notification.get("sequence", after))
                    render_line(notification, session.output, session.console,
                                summary(notification))  # fmt: skip
                    printed += 1
                    if count and printed >= count:
                        return after
                return after  # the server ended the stream (expired or revoked)
            except CommandError as failed:
                failures += 1
                if failed.status != "UNAVAILABLE" or failures > RECONNECTS:
                    raise
                time.sleep(RECONNECT_WAIT_S)
    except KeyboardInterrupt:
        return after


def summary(notification: Json) -> str:
    """One greppable line: sequence, type and ids; never clinical content."""
    parts = [f"#{notification.get('sequence', '?')} {notification.get('type', '')}"]
    for label in ("order", "result", "patient"):
        value = notification.get(f"{label}_id")
        if value:
            parts.append(f"{label}={value}")
    if notification.get("version"):
        parts.append(f"version={notification['version']}")
    return " ".join(parts)


def _topics(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in TOPICS]
    if unknown:
        msg = f"unknown topic; choose from {', '.join(TOPICS)}"
        raise UsageError(msg)
    return [TOPICS[name] for name in names]
