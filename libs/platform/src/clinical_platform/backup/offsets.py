"""Planning writes that land every record of a partition at the offset it had.

Checkpoints sign (offset, hash) pairs, so a restored log verifies against the original
checkpoints only if each record keeps its offset. A producer cannot choose offsets, but the
offsets a partition skips (under read_committed) are only ever transaction markers and records
of aborted transactions, and those a restore can write too: a commit or an abort takes one
offset, an aborted filler record one more. So the gaps between the copied records are read as
a sequence of positions, each a record (V) or a gap (E), and a small search finds a schedule of
transactional sends, commits, aborted fillers and aborts that yields exactly that sequence.

Several transactions may be open at once (checkpoint runners of different partitions interleave
on one checkpoints partition: record, record, marker, marker), each on its own producer; at most
``max_open`` of them, and one aborted transaction at a time. A layout no schedule yields (a
partition starting at offset 1, say) raises `OffsetLayoutError` before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

MAX_OPEN_TRANSACTIONS = 16


class OffsetLayoutError(Exception):
    """No schedule of transactions reproduces the partition's offsets."""


class Action(Enum):
    SEND = "send"  # a copied record, in the transaction ``slot`` (None: no transaction)
    FILLER = "filler"  # an empty record in the aborted transaction: invisible once aborted
    COMMIT = "commit"  # transaction ``slot`` commits: its marker takes this offset
    ABORT = "abort"  # the aborted transaction ends: its marker takes this offset


@dataclass(frozen=True)
class Step:
    action: Action
    offset: int
    slot: int | None = None  # the producer (one per open transaction); None: the plain one
    record: int | None = None  # index of the copied record (SEND only)


def plan_writes(
    offsets: Sequence[int], end_offset: int, *, max_open: int = MAX_OPEN_TRANSACTIONS
) -> list[Step]:
    """The steps that write records at ``offsets`` (increasing) into an empty partition and
    leave its end at ``end_offset``; raises `OffsetLayoutError` when none do."""
    visible = _visible(offsets, end_offset)
    reachable = _reachable_backwards(visible, max_open)
    if not reachable[0] & _bit(0, 0):
        msg = f"no transaction schedule reproduces offsets 0..{end_offset - 1} of this partition"
        raise OffsetLayoutError(msg)
    return _forward(visible, reachable, max_open)


def sequential_offsets(records: int) -> tuple[list[int], int]:
    """Offsets for records whose own offsets need not be kept: each in its own transaction."""
    return [2 * index for index in range(records)], 2 * records


def _visible(offsets: Sequence[int], end_offset: int) -> list[bool]:
    visible = [False] * end_offset
    last = -1
    for offset in offsets:
        if offset <= last or offset >= end_offset:
            raise OffsetLayoutError(f"offset {offset} is out of order or past the partition's end")
        visible[offset] = True
        last = offset
    return visible


def _bit(open_committed: int, open_aborted: int) -> int:
    return 1 << (2 * open_committed + open_aborted)


def _moves(
    is_record: bool, committed: int, aborted: int, max_open: int
) -> list[tuple[str, int, int]]:
    """(move, committed, aborted) after each move allowed here, in order of preference."""
    if is_record:
        moves = []
        if committed:
            moves.append(("join", committed, aborted))
        if committed < max_open:
            moves.append(("new", committed + 1, aborted))
        if not committed:
            moves.append(("plain", committed, aborted))
        return moves
    moves = []
    if committed:
        moves.append(("commit", committed - 1, aborted))
    if aborted:
        moves.append(("abort", committed, 0))
    moves.append(("filler", committed, 1))
    return moves


def _reachable_backwards(visible: list[bool], max_open: int) -> list[int]:
    """reachable[i]: bitmask of states at position i from which the end (nothing open) is
    reachable."""
    states = [(c, a) for c in range(max_open + 1) for a in (0, 1)]
    reachable = [0] * (len(visible) + 1)
    reachable[-1] = _bit(0, 0)
    for position in range(len(visible) - 1, -1, -1):
        after = reachable[position + 1]
        mask = 0
        for committed, aborted in states:
            moves = _moves(visible[position], committed, aborted, max_open)
            if any(after & _bit(c, a) for _move, c, a in moves):
                mask |= _bit(committed, aborted)
        reachable[position] = mask
    return reachable


def _forward(visible: list[bool], reachable: list[int], max_open: int) -> list[Step]:
    steps: list[Step] = []
    open_slots: list[int] = []  # committed transactions, oldest first
    free_slots = list(range(max_open))
    aborted_slot = max_open  # the one aborted transaction's producer
    aborted = 0
    record = 0
    for position, is_record in enumerate(visible):
        move, _committed, aborted_after = next(
            (m, c, a)
            for m, c, a in _moves(is_record, len(open_slots), aborted, max_open)
            if reachable[position + 1] & _bit(c, a)
        )
        if move == "new":
            open_slots.append(free_slots.pop(0))
        if move in {"join", "new"}:
            steps.append(Step(Action.SEND, position, open_slots[-1], record))
        elif move == "plain":
            steps.append(Step(Action.SEND, position, None, record))
        elif move == "commit":
            slot = open_slots.pop(0)
            free_slots.append(slot)
            steps.append(Step(Action.COMMIT, position, slot))
        elif move == "abort":
            steps.append(Step(Action.ABORT, position, aborted_slot))
        else:
            steps.append(Step(Action.FILLER, position, aborted_slot))
        record += is_record
        aborted = aborted_after
    return steps
