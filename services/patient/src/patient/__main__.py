"""``python -m patient`` or ``clinical-patient``: start the patient service."""

import asyncio

from clinical_platform.settings import load_settings_or_exit
from patient.bootstrap import serve
from patient.settings import PatientSettings


def main() -> None:
    """Load settings (exit 2 naming any bad variable), then serve until SIGTERM."""
    settings = load_settings_or_exit(PatientSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
