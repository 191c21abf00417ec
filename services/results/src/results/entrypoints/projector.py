"""``python -m results.entrypoints.projector [--rebuild]``: run or rebuild the results read models
(results, and the service's view of order states; `clinical_platform.projections.entrypoint`
says how)."""

from __future__ import annotations

from clinical_platform.projections.entrypoint import projector_main
from results.bootstrap import SERVICE, results_projections
from results.settings import ResultsSettings


def main(argv: list[str] | None = None) -> None:
    projector_main(ResultsSettings, service=SERVICE, projections=results_projections, argv=argv)


if __name__ == "__main__":
    main()
