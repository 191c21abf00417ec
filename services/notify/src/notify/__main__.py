"""``python -m notify`` or ``clinical-notify``: start the notify service."""

import asyncio

from clinical_platform.settings import load_settings_or_exit
from notify.bootstrap import serve
from notify.settings import NotifySettings


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(NotifySettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
