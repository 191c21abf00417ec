"""Field comparators: each turns two normalised values into a level, or None when one is missing.

Levels are ordered from strongest agreement to disagreement; `model.py` gives each a weight.
"""

from __future__ import annotations

from collections.abc import Collection

import jellyfish

EXACT = "exact"
SIMILAR = "similar"  # a typo or two: Jaro-Winkler at or above the field's threshold
PHONETIC = "phonetic"  # sounds alike (Metaphone or NYSIIS agree) but spelled differently
SWAPPED = "day_month_swapped"
ONE_PART_DIFFERS = "one_part_differs"
MOST = "most"
SOME = "some"
DISAGREE = "disagree"

NAME_SIMILAR = 0.9
PLACE_SIMILAR = 0.9
TOKEN_SIMILAR = 0.88


def compare_name(first: Collection[str] | str, second: Collection[str] | str) -> str | None:
    """Best level over every pair of name parts: equal, typo-close, sound-alike, or not."""
    left = [first] if isinstance(first, str) else list(first)
    right = [second] if isinstance(second, str) else list(second)
    left, right = [n for n in left if n], [n for n in right if n]
    if not left or not right:
        return None
    levels = [_name_level(a, b) for a in left for b in right]
    return min(levels, key=_NAME_ORDER.index)


_NAME_ORDER = [EXACT, SIMILAR, PHONETIC, DISAGREE]


def _name_level(first: str, second: str) -> str:
    if first == second:
        return EXACT
    if jellyfish.jaro_winkler_similarity(first, second) >= NAME_SIMILAR:
        return SIMILAR
    if sounds_alike(first, second):
        return PHONETIC
    return DISAGREE


def sounds_alike(first: str, second: str) -> bool:
    return jellyfish.metaphone(first) == jellyfish.metaphone(second) or (
        jellyfish.nysiis(first) == jellyfish.nysiis(second)
    )


def compare_birth_date(
    first: tuple[int, int, int] | None, second: tuple[int, int, int] | None
) -> str | None:
    """Equal; day and month swapped (a US/EU entry mix-up); one of year/month/day differs."""
    if first is None or second is None:
        return None
    if first == second:
        return EXACT
    (y1, m1, d1), (y2, m2, d2) = first, second
    if y1 == y2 and m1 == d2 and d1 == m2:
        return SWAPPED
    if sum(a == b for a, b in zip(first, second, strict=True)) == 2:
        return ONE_PART_DIFFERS
    return DISAGREE


def compare_code(first: str, second: str) -> str | None:
    """Postal codes: equal, or one typo (a substitution or an adjacent transposition)."""
    if not first or not second:
        return None
    if first == second:
        return EXACT
    if len(first) == len(second) and (
        jellyfish.hamming_distance(first, second) == 1
        or jellyfish.damerau_levenshtein_distance(first, second) == 1
    ):
        return SIMILAR
    return DISAGREE


def compare_place(first: str, second: str) -> str | None:
    """Town or street names: equal, or typo-close by Jaro-Winkler."""
    if not first or not second:
        return None
    if first == second:
        return EXACT
    if jellyfish.jaro_winkler_similarity(first, second) >= PLACE_SIMILAR:
        return SIMILAR
    return DISAGREE


def compare_tokens(first: frozenset[str], second: frozenset[str]) -> str | None:
    """Address words: share of the shorter side's words with an equal or typo-close partner."""
    if not first or not second:
        return None
    if first == second:
        return EXACT
    # Words split or joined by a typo ("p lace", "caravan"/"car avan") still read the same.
    joined = "".join(sorted(first)), "".join(sorted(second))
    if jellyfish.jaro_winkler_similarity(*joined) >= PLACE_SIMILAR:
        return MOST
    shorter, longer = sorted((first, second), key=len)
    found = sum(
        1
        for token in shorter
        if token in longer
        or any(jellyfish.jaro_winkler_similarity(token, other) >= TOKEN_SIMILAR for other in longer)
    )
    overlap = found / len(shorter)
    if overlap >= 0.99:
        return MOST if len(shorter) < len(longer) else EXACT
    if overlap >= 0.5:
        return SOME
    return DISAGREE


def compare_exact(first: str, second: str) -> str | None:
    if not first or not second:
        return None
    return EXACT if first == second else DISAGREE
