"""The bundled catalogue of laboratory tests results are posted for (``lab_tests.csv``).

Columns: ``code`` (LOINC), ``display``, ``unit`` (UCUM; empty for a test that reports a code or
text), ``reference_low``/``reference_high`` (the default adult reference range) and
``critical_low``/``critical_high`` (the limits beyond which a value is critical). Empty limits
are absent. The values are typical adult ones for a demonstration catalogue; a laboratory
configures its own.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from importlib import resources

from clinical_platform.terminology import loinc_problem, ucum_problem
from results.domain.observation import CriticalLimits, ReferenceRange, TestDefinition


class CatalogueError(ValueError):
    """The catalogue file is malformed: a packaging error that stops start-up."""


class CsvLabCatalogue:
    """Tests read once from the CSV; looked up by LOINC code."""

    def __init__(self, tests: dict[str, TestDefinition]) -> None:
        self._tests = tests

    @classmethod
    def bundled(cls) -> CsvLabCatalogue:
        """The catalogue shipped with the service."""
        text = resources.files(__package__).joinpath("lab_tests.csv").read_text(encoding="utf-8")
        return cls.from_csv(text)

    @classmethod
    def from_csv(cls, text: str) -> CsvLabCatalogue:
        tests: dict[str, TestDefinition] = {}
        for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            try:
                test = _test(row)
            except (CatalogueError, InvalidOperation, KeyError) as error:
                raise CatalogueError(f"lab test catalogue line {line}: {error}") from None
            if test.code in tests:
                raise CatalogueError(f"lab test catalogue line {line}: duplicate code")
            tests[test.code] = test
        return cls(tests)

    def find(self, code: str) -> TestDefinition | None:
        return self._tests.get(code)

    def __len__(self) -> int:
        return len(self._tests)


def _test(row: dict[str, str]) -> TestDefinition:
    code, display, unit = row["code"].strip(), row["display"].strip(), row["unit"].strip()
    problem = loinc_problem(code) or (ucum_problem(unit) if unit else None)
    if problem or not display:
        raise CatalogueError(problem or "no display name")
    limits = {name: _decimal(row[name]) for name in _LIMIT_COLUMNS}
    if not unit and any(value is not None for value in limits.values()):
        raise CatalogueError("limits without a unit")
    reference = ReferenceRange(limits["reference_low"], limits["reference_high"])
    critical = CriticalLimits(limits["critical_low"], limits["critical_high"])
    return TestDefinition(
        code=code,
        display=display,
        unit=unit or None,
        reference_range=None if reference == ReferenceRange(None, None) else reference,
        critical_limits=None if critical == CriticalLimits(None, None) else critical,
    )


_LIMIT_COLUMNS = ("reference_low", "reference_high", "critical_low", "critical_high")


def _decimal(text: str) -> Decimal | None:
    return Decimal(text.strip()) if text.strip() else None
