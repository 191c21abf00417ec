"""``python -m gateway`` or ``clinical-gateway``: start the gateway service."""

import asyncio

from clinical_platform.settings import load_settings_or_exit
from gateway.bootstrap import serve
from gateway.settings import GatewaySettings


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(GatewaySettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
