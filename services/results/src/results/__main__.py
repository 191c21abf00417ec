"""``python -m results`` or ``clinical-results``: start the results service."""

import asyncio

from clinical_platform.settings import load_settings_or_exit
from results.bootstrap import serve
from results.settings import ResultsSettings


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(ResultsSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
