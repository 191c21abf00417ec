"""Blocking keys: which existing records are worth comparing with a new one.

Several passes, each a different key, so that a typo in one field still leaves the pair sharing
another key. A candidate source returns every record that shares at least one key.
"""

from __future__ import annotations

import jellyfish

from patient.matching.record import MatchRecord


def blocking_keys(record: MatchRecord) -> list[str]:
    """The record's keys, e.g. ``fy:S530|1963`` (family name's Soundex and birth year)."""
    keys: list[str] = []
    family = jellyfish.soundex(record.family) if record.family else ""
    given = jellyfish.soundex(record.given[0]) if record.given else ""
    if record.birth is not None:
        year, month, day = record.birth
        # Day and month sorted, so a swapped date still shares the key.
        keys.append(f"dob:{year}|{min(month, day)}|{max(month, day)}")
        if family:
            keys.append(f"fy:{family}|{year}")
        if given:
            keys.append(f"gy:{given}|{year}")
    if record.postal_code:
        if family:
            keys.append(f"pf:{record.postal_code}|{family}")
        if given:
            keys.append(f"pg:{record.postal_code}|{given}")
        if record.street_number:
            keys.append(f"pn:{record.postal_code}|{record.street_number}")
    if family and given:
        keys.append(f"gf:{given}|{family}")
    if family and record.city:
        keys.append(f"fc:{family}|{jellyfish.soundex(record.city)}")
    if record.city and record.street_number:
        keys.append(f"cn:{record.city}|{record.street_number}")
    keys += [f"id:{system}|{value}" for system, value in sorted(record.identifiers)]
    if record.phone:
        keys.append(f"ph:{record.phone}")
    if record.email:
        keys.append(f"em:{record.email}")
    return keys
