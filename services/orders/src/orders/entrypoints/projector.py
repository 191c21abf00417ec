"""``python -m orders.entrypoints.projector [--rebuild]``: run or rebuild the orders read model
(`clinical_platform.projections.entrypoint` says how)."""

from __future__ import annotations

from clinical_platform.projections.entrypoint import projector_main
from orders.bootstrap import SERVICE, orders_projections
from orders.settings import OrdersSettings


def main(argv: list[str] | None = None) -> None:
    projector_main(OrdersSettings, service=SERVICE, projections=orders_projections, argv=argv)


if __name__ == "__main__":
    main()
