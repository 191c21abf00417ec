"""Trail positions, page tokens, windows and pages."""

import pytest

from audit.domain.queries import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidPageToken,
    PageRequest,
    Position,
    TimeWindow,
    page_of,
)

pytestmark = pytest.mark.unit


def test_a_page_token_continues_exactly_after_its_position() -> None:
    position = Position(1_700_000_000_123_456_789, 7, "0b7c1a9e-5d2f-4c1e-9a57-3f0d8e6b2c41")

    assert Position.from_token(position.token()) == position


@pytest.mark.parametrize("token", ["forged", "cDE6eDp5Onc", "", "p1:1:2:x", "!!!"])
def test_tokens_this_service_did_not_issue_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        Position.from_token(token)


def test_positions_order_by_time_then_version_then_id() -> None:
    positions = [Position(2, 1, "a"), Position(1, 2, "b"), Position(1, 1, "c"), Position(1, 1, "b")]

    assert sorted(positions) == [
        Position(1, 1, "b"), Position(1, 1, "c"), Position(1, 2, "b"), Position(2, 1, "a")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("asked", "given"), [(0, DEFAULT_PAGE_SIZE), (5, 5), (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE)]
)
def test_page_size_zero_means_the_default_and_too_large_means_the_maximum(
    asked: int, given: int
) -> None:
    assert PageRequest.of(asked, "").size == given


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
    assert (last.items, last.next, last.next_page_token) == ([0, 1, 2], None, "")
