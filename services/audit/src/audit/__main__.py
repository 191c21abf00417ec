"""``python -m audit`` or ``clinical-audit``: start the audit service."""

import asyncio

from audit.bootstrap import serve
from audit.settings import AuditSettings
from clinical_platform.settings import load_settings_or_exit


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(AuditSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
