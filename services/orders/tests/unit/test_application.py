"""OrdersApp with in-memory fakes of its ports: ids, lookups and read-after-write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.reads import ReadModelBehind, VersionNotRecorded
from clinical_platform.versions import VersionWanted
from orders.adapters.lab_test_catalogue import CsvLabTestCatalogue
from orders.application import OrdersApp, PlaceOrder, order_id_for
from orders.domain.errors import OrderNotFound
from orders.domain.order import CodeSystem, Order, OrderStatus, Priority, ReasonCode
from orders.ports import OrderPage, OrderQuery, OrderView

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class InMemoryOrders:
    """The repository port: orders by id, each request id's outcome remembered."""

    def __init__(self) -> None:
        self.orders: dict[UUID, Order] = {}
        self.outcomes: dict[tuple[UUID, str], int] = {}

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Callable[[Order | None], Order],
        *,
        expected_version: int | None = None,
    ) -> AppendResult:
        recorded = self.outcomes.get((aggregate_id, context.request_id))
        if recorded is not None:
            return AppendResult(str(aggregate_id), recorded, replayed=True)
        order = command(self.orders.get(aggregate_id))
        order.collect_events()
        self.orders[aggregate_id] = order
        self.outcomes[aggregate_id, context.request_id] = order.version
        return AppendResult(str(aggregate_id), order.version)

    def current_version(self, aggregate_id: UUID) -> int:
        order = self.orders.get(aggregate_id)
        return order.version if order is not None else 0


class EmptyReadModel:
    """A read model that has seen nothing yet."""

    async def get(
        self, order_id: str, *, min_version: int, wait_s: float, wanted: VersionWanted = None
    ) -> OrderView | None:
        return None

    async def list(self, query: OrderQuery) -> OrderPage:
        return OrderPage((), "")


def context(request_id: str, subject: str = "dr-a") -> CommandContext:
    return CommandContext(actor=Actor(subject=subject, roles=("clinician",)), request_id=request_id)


@pytest.fixture
def orders() -> InMemoryOrders:
    return InMemoryOrders()


@pytest.fixture
def app(orders: InMemoryOrders) -> OrdersApp:
    return OrdersApp(orders, CsvLabTestCatalogue.bundled(), EmptyReadModel(), clock=lambda: NOW)


def glucose_for(patient_id: UUID) -> PlaceOrder:
    return PlaceOrder(
        patient_id, "2345-7", Priority.ROUTINE, [ReasonCode(CodeSystem.ICD10, "E11.9")]
    )


async def test_placing_twice_with_one_request_id_returns_the_first_order(
    app: OrdersApp, orders: InMemoryOrders
) -> None:
    command = glucose_for(uuid4())

    first = await app.place_order(command, context("req-1"))
    again = await app.place_order(command, context("req-1"))

    assert first == again
    assert list(orders.orders) == [first.order_id]


def test_the_same_request_id_from_two_callers_names_two_orders() -> None:
    assert order_id_for("dr-a", "req-1") != order_id_for("dr-b", "req-1")
    assert order_id_for("dr-a", "req-1") == order_id_for("dr-a", "req-1")


async def test_the_caller_is_the_orderer_and_the_signer(
    app: OrdersApp, orders: InMemoryOrders
) -> None:
    placed = await app.place_order(glucose_for(uuid4()), context("req-1", subject="dr-a"))

    version = await app.sign_order(
        placed.order_id, context("req-2", subject="dr-b"), mfa=True, expected_version=None
    )

    order = orders.orders[placed.order_id]
    assert (version, order.status, order.orderer) == (2, OrderStatus.SIGNED, "dr-a")
    assert order.signature is not None
    assert (order.signature.signer, order.signature.signed_at) == ("dr-b", NOW)


async def test_commands_on_an_unknown_order_report_it_not_found(app: OrdersApp) -> None:
    unknown = uuid4()
    with pytest.raises(OrderNotFound):
        await app.sign_order(unknown, context("req-1"), mfa=True, expected_version=None)
    with pytest.raises(OrderNotFound):
        await app.cancel_order(unknown, context("req-2"), reason="x", expected_version=None)


async def test_a_read_of_an_absent_order_is_not_found(app: OrdersApp) -> None:
    with pytest.raises(OrderNotFound):
        await app.get_order(uuid4(), min_version=0, wait_s=0)


async def test_a_read_for_a_version_the_read_model_lacks_says_it_is_behind(app: OrdersApp) -> None:
    placed = await app.place_order(glucose_for(uuid4()), context("req-1"))

    with pytest.raises(ReadModelBehind):
        await app.get_order(placed.order_id, min_version=1, wait_s=0)
    with pytest.raises(ReadModelBehind):
        await app.list_orders(OrderQuery(patient_id=str(uuid4())), after=(placed.order_id, 1))


async def test_a_read_for_a_version_the_log_does_not_hold_is_refused_without_waiting(
    app: OrdersApp,
) -> None:
    placed = await app.place_order(glucose_for(uuid4()), context("req-1"))
    # Far longer than any test: an answer at all means the read did not wait.
    wait_s = 600.0

    with pytest.raises(VersionNotRecorded):
        await app.get_order(placed.order_id, min_version=2**63 - 1, wait_s=wait_s)
    with pytest.raises(VersionNotRecorded):
        await app.get_order(uuid4(), min_version=1, wait_s=wait_s)
    with pytest.raises(VersionNotRecorded):
        await app.list_orders(
            OrderQuery(patient_id=str(uuid4())), after=(placed.order_id, 2), wait_s=wait_s
        )
