"""Planning a restore's writes so every record lands at the offset it had: the gaps are
transaction markers and aborted records, which the plan reproduces."""

from __future__ import annotations

import pytest

from clinical_platform.backup.offsets import (
    Action,
    OffsetLayoutError,
    Step,
    plan_writes,
    sequential_offsets,
)

pytestmark = pytest.mark.unit


def replay(steps: list[Step]) -> tuple[list[int], int]:
    """What a broker would do with the steps: (offsets of visible records, the end offset),
    checking that every transaction is opened before it ends and ended before the end."""
    open_slots: set[int] = set()
    visible: dict[int, list[int]] = {}
    shown: list[int] = []
    for offset, step in enumerate(steps):
        assert step.offset == offset
        if step.action is Action.SEND and step.slot is None:
            shown.append(offset)
        elif step.action in {Action.SEND, Action.FILLER}:
            assert step.slot is not None
            open_slots.add(step.slot)
            visible.setdefault(step.slot, []).append(offset if step.action is Action.SEND else -1)
        else:
            assert step.slot in open_slots
            open_slots.discard(step.slot)
            written = visible.pop(step.slot or 0)
            if step.action is Action.COMMIT:
                assert -1 not in written
                shown += written
            else:
                assert all(o == -1 for o in written)
    assert not open_slots
    return sorted(shown), len(steps)


@pytest.mark.parametrize(("offsets", "end"), [
    ([0, 1, 2], 3),  # plain records: no markers
    ([0, 1, 2], 4),  # one transaction of three records
    ([0, 2, 4], 6),  # a transaction per record, as an event writer commits
    ([0, 1], 4),  # two writers' transactions interleaved (checkpoint runners)
    ([0, 1, 3], 6),  # a transaction, a plain record, an aborted transaction
    ([2], 4),  # an aborted transaction first
    ([0, 1, 3, 6], 8),  # record, record, marker, record, marker, marker, record, marker
    ([], 0),
])  # fmt: skip
def test_the_plan_reproduces_every_offset_and_the_end(offsets: list[int], end: int) -> None:
    assert replay(plan_writes(offsets, end)) == (offsets, end)


def test_records_are_sent_in_their_order() -> None:
    steps = plan_writes([0, 1, 3, 6], 8)

    assert [s.record for s in steps if s.action is Action.SEND] == [0, 1, 2, 3]


def test_a_layout_no_transactions_can_make_is_refused_before_any_write() -> None:
    # One offset before the first record: no marker or aborted record takes exactly one.
    with pytest.raises(OffsetLayoutError, match="no transaction schedule"):
        plan_writes([1], 2)


def test_out_of_order_offsets_are_refused() -> None:
    with pytest.raises(OffsetLayoutError, match="out of order"):
        plan_writes([2, 1], 4)


def test_a_lone_offset_after_the_last_record_is_refused() -> None:
    # An empty partition whose end is 1: one offset and nothing visible, no marker alone.
    with pytest.raises(OffsetLayoutError):
        plan_writes([], 1)


def test_records_whose_offsets_need_not_be_kept_each_get_a_transaction() -> None:
    offsets, end = sequential_offsets(3)

    assert replay(plan_writes(offsets, end)) == (offsets, end)
    assert [s.action for s in plan_writes(offsets, end)].count(Action.COMMIT) == 3
