"""The bundled catalogue of orderable laboratory tests (``lab_tests.csv``: LOINC code, name)."""

from __future__ import annotations

import csv
import io
from importlib import resources

from clinical_platform.terminology import loinc_problem
from orders.domain.order import OrderedTest


class CsvLabTestCatalogue:
    """Orderable tests read once from a CSV with the columns ``code`` and ``display``."""

    def __init__(self, tests: dict[str, OrderedTest]) -> None:
        self._tests = tests

    @classmethod
    def bundled(cls) -> CsvLabTestCatalogue:
        """The catalogue shipped with the service."""
        text = resources.files(__package__).joinpath("lab_tests.csv").read_text(encoding="utf-8")
        return cls.from_csv(text)

    @classmethod
    def from_csv(cls, text: str) -> CsvLabTestCatalogue:
        """Parse a catalogue; a malformed row is a packaging error and stops start-up."""
        tests: dict[str, OrderedTest] = {}
        for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            code, display = row["code"].strip(), row["display"].strip()
            problem = loinc_problem(code)
            if problem or not display or code in tests:
                reason = problem or ("has no display name" if not display else "is a duplicate")
                raise ValueError(f"lab test catalogue line {line}: the code {reason}")
            tests[code] = OrderedTest(code=code, display=display)
        return cls(tests)

    def find(self, code: str) -> OrderedTest | None:
        return self._tests.get(code)

    def __len__(self) -> int:
        return len(self._tests)
