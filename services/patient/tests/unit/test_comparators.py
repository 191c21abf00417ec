"""Field comparators: each level of agreement they tell apart."""

import pytest

from patient.matching.comparators import (
    DISAGREE,
    EXACT,
    MOST,
    ONE_PART_DIFFERS,
    PHONETIC,
    SIMILAR,
    SOME,
    SWAPPED,
    compare_birth_date,
    compare_code,
    compare_exact,
    compare_name,
    compare_place,
    compare_tokens,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        ("thornton", "thornton", EXACT),
        ("thornton", "thornten", SIMILAR),
        ("smith", "smyth", PHONETIC),
        ("catherine", "kathryn", PHONETIC),
        ("thornton", "julius", DISAGREE),
    ],
)
def test_names_compare_by_jaro_winkler_then_by_sound(first: str, second: str, level: str) -> None:
    assert compare_name(first, second) == level


def test_the_best_pair_of_given_names_counts() -> None:
    assert compare_name(("anne", "margaret"), ("margaret",)) == EXACT


def test_a_missing_name_is_no_evidence() -> None:
    assert compare_name("", "thornton") is None
    assert compare_name((), ("anne",)) is None


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [
        ((1961, 4, 12), (1961, 4, 12), EXACT),
        ((1961, 4, 12), (1961, 12, 4), SWAPPED),
        ((1961, 4, 12), (1961, 4, 21), ONE_PART_DIFFERS),
        ((1961, 4, 12), (1916, 4, 12), ONE_PART_DIFFERS),
        ((1961, 4, 12), (1975, 9, 30), DISAGREE),
    ],
)
def test_birth_dates_detect_swapped_day_and_month_and_single_typos(
    first: tuple[int, int, int], second: tuple[int, int, int], level: str
) -> None:
    assert compare_birth_date(first, second) == level


def test_a_missing_birth_date_is_no_evidence() -> None:
    assert compare_birth_date(None, (1961, 4, 12)) is None


@pytest.mark.parametrize(
    ("first", "second", "level"),
    [("4031", "4031", EXACT), ("4031", "4013", SIMILAR), ("4031", "4032", SIMILAR),
     ("4031", "2600", DISAGREE)],
)  # fmt: skip
def test_postal_codes_allow_one_substitution_or_transposition(
    first: str, second: str, level: str
) -> None:
    assert compare_code(first, second) == level


def test_places_compare_by_jaro_winkler() -> None:
    assert compare_place("kedron", "kedron") == EXACT
    assert compare_place("bellevuehill", "bellevehill") == SIMILAR
    assert compare_place("kedron", "toowong") == DISAGREE


def test_address_words_overlap_by_level() -> None:
    full = frozenset({"wattle", "street", "rosetta", "village"})
    assert compare_tokens(full, full) == EXACT
    assert compare_tokens(full, frozenset({"wattle", "street"})) == MOST
    assert compare_tokens(full, frozenset({"wattle", "stret", "rosetta", "vilage"})) == MOST
    assert compare_tokens(frozenset({"wattle", "street"}), frozenset({"wattle", "road"})) == SOME
    assert compare_tokens(full, frozenset({"ocean", "parade"})) == DISAGREE


def test_words_split_by_a_typo_still_agree() -> None:
    assert compare_tokens(frozenset({"bayly", "p", "lace"}), frozenset({"bayly", "place"})) == MOST


def test_phone_and_email_compare_exactly() -> None:
    assert compare_exact("733501234", "733501234") == EXACT
    assert compare_exact("733501234", "733501235") == DISAGREE
    assert compare_exact("", "733501234") is None
