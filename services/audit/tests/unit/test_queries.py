"""Trail positions, windows and pages (page tokens and sizes: test_translate.py)."""

import pytest

from audit.domain.queries import Position, TimeWindow, page_of

pytestmark = pytest.mark.unit


def test_positions_order_by_time_then_version_then_id() -> None:
    positions = [Position(2, 1, "a"), Position(1, 2, "b"), Position(1, 1, "c"), Position(1, 1, "b")]

    assert sorted(positions) == [
        Position(1, 1, "b"), Position(1, 1, "c"), Position(1, 2, "b"), Position(2, 1, "a")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("since", "until", "valid"),
    [(None, None, True), (1, None, True), (None, 1, True), (1, 2, True), (2, 2, False),
     (3, 2, False)],
)  # fmt: skip
def test_a_window_must_end_after_it_starts(
    since: int | None, until: int | None, valid: bool
) -> None:
    assert TimeWindow(since, until).is_valid is valid


def test_a_page_says_whether_more_follow_by_the_extra_item_it_was_given() -> None:
    positioned = [(Position(n, 0, str(n)), n) for n in range(4)]

    full = page_of(positioned, 3)
    last = page_of(positioned[:3], 3)

    assert (full.items, full.next) == ([0, 1, 2], Position(2, 0, "2"))
    assert (last.items, last.next) == ([0, 1, 2], None)
