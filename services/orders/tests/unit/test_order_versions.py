"""An order's earlier versions, folded from what each version set (the read model's history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clinical_platform.reads import VersionNotRecorded
from orders.adapters.order_documents import order_view, version_document
from orders.domain.errors import OrderNotFound
from orders.domain.order import OrderStatus

pytestmark = pytest.mark.unit

PLACED_AT = datetime(2026, 12, 7, 10, tzinfo=UTC)


def document() -> dict[str, Any]:
    placed = {"patient_id": "p-1", "status": "draft", "test": {"code": "2345-7",
              "display": "Glucose"}, "test_code": "2345-7", "priority": "routine",
              "reasons": [], "orderer": "dr-a", "placed_at": PLACED_AT}  # fmt: skip
    signed = {"status": "signed", "signature": {"signer": "dr-b", "mfa": True,
              "signed_at": PLACED_AT + timedelta(minutes=1)}}  # fmt: skip
    cancelled = {"status": "cancelled", "cancellation": {"cancelled_by": "dr-a",
                 "reason": "twice", "cancelled_at": PLACED_AT + timedelta(minutes=2)}}  # fmt: skip
    history = [{"version": n, "recorded_at": PLACED_AT + timedelta(minutes=n - 1), "set": fields}
               for n, fields in enumerate((placed, signed, cancelled), start=1)]  # fmt: skip
    # The entries may come back in any order: the fold sorts them.
    return {"_id": "o-1", "version": 3, **placed, **signed, **cancelled,
            "recorded_at": history[-1]["recorded_at"], "history": history[::-1]}  # fmt: skip


@pytest.mark.parametrize(("wanted", "status", "version"), [
    (1, OrderStatus.DRAFT, 1), (2, OrderStatus.SIGNED, 2), (3, OrderStatus.CANCELLED, 3),
    (PLACED_AT + timedelta(seconds=90), OrderStatus.SIGNED, 2),
    (PLACED_AT, OrderStatus.DRAFT, 1), (PLACED_AT + timedelta(days=1), OrderStatus.CANCELLED, 3),
])  # fmt: skip
def test_a_version_or_an_instant_shows_the_order_as_it_was(
    wanted: int | datetime, status: OrderStatus, version: int
) -> None:
    view = order_view(version_document(document(), wanted))
    assert (view.status, view.version) == (status, version)
    assert view.recorded_at == PLACED_AT + timedelta(minutes=version - 1)
    assert (view.signature is not None) == (version >= 2)
    assert (view.cancellation is not None) == (version == 3)


def test_a_version_it_does_not_hold_is_not_recorded_and_an_instant_before_is_not_found() -> None:
    with pytest.raises(VersionNotRecorded):
        version_document(document(), 4)
    with pytest.raises(OrderNotFound):
        version_document(document(), PLACED_AT - timedelta(seconds=1))
