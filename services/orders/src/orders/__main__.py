"""``python -m orders`` or ``clinical-orders``: start the orders service."""

import asyncio

from clinical_platform.settings import load_settings_or_exit
from orders.bootstrap import serve
from orders.settings import OrdersSettings


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(OrdersSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
