"""``python -m patient.entrypoints.projector [--rebuild]``: run or rebuild the patient read model
(the patient index, review queue and golden records; `clinical_platform.projections.entrypoint`
says how)."""

from __future__ import annotations

from clinical_platform.projections.entrypoint import projector_main
from patient.bootstrap import SERVICE, patient_projections
from patient.settings import PatientSettings


def main(argv: list[str] | None = None) -> None:
    projector_main(PatientSettings, service=SERVICE, projections=patient_projections, argv=argv)


if __name__ == "__main__":
    main()
