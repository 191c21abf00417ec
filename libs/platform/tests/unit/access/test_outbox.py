"""The outbox: durable, owner-only, deduplicated, group-committed, failing closed."""

import asyncio
import stat
from pathlib import Path

import pytest

from clinical_platform.access.outbox import (
    AccessAuditUnavailableError,
    AccessOutbox,
    AsyncOutbox,
    OutboxEntry,
)

pytestmark = pytest.mark.unit


def _entry(n: int) -> OutboxEntry:
    return OutboxEntry(f"record-{n}", b"patient", f"value-{n}".encode())


async def test_entries_survive_reopening_in_order_and_removed_ones_stay_removed(
    tmp_path: Path,
) -> None:
    outbox = AsyncOutbox(tmp_path / "state" / "outbox.sqlite")
    await outbox.open()
    for n in range(3):
        await outbox.add(_entry(n))
    first = (await outbox.pending(1))[0]
    await outbox.remove([first.seq])
    await outbox.close()

    reopened = AsyncOutbox(tmp_path / "state" / "outbox.sqlite")
    await reopened.open()
    left = await reopened.pending(10)
    await reopened.close()

    assert [entry.record_id for entry in left] == ["record-1", "record-2"]
    assert left[0].value == b"value-1"


async def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    outbox = AsyncOutbox(tmp_path / "outbox.sqlite")
    await outbox.open()
    await outbox.add(_entry(1))
    await outbox.close()

    mode = stat.S_IMODE((tmp_path / "outbox.sqlite").stat().st_mode)
    assert mode == 0o600


async def test_a_record_added_twice_is_pending_once(tmp_path: Path) -> None:
    outbox = AsyncOutbox(tmp_path / "outbox.sqlite")
    await outbox.open()
    await outbox.add(_entry(1))
    await outbox.add(_entry(1))

    assert await outbox.count() == 1
    await outbox.close()


async def test_concurrent_adds_share_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    original = AccessOutbox.add

    def counting_add(self: AccessOutbox, entries: list[OutboxEntry]) -> None:
        commits.append(len(entries))
        original(self, entries)

    monkeypatch.setattr(AccessOutbox, "add", counting_add)
    outbox = AsyncOutbox(tmp_path / "outbox.sqlite")
    await outbox.open()

    await asyncio.gather(*(outbox.add(_entry(n)) for n in range(50)))

    assert await outbox.count() == 50
    assert sum(commits) == 50
    assert len(commits) < 50
    await outbox.close()


async def test_a_failing_disk_fails_the_add_closed_without_quoting_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: AccessOutbox, entries: list[OutboxEntry]) -> None:
        raise OSError(28, f"No space left on device: {tmp_path}")

    monkeypatch.setattr(AccessOutbox, "add", full_disk)
    outbox = AsyncOutbox(tmp_path / "outbox.sqlite")
    await outbox.open()

    with pytest.raises(AccessAuditUnavailableError) as failed:
        await outbox.add(_entry(1))

    assert str(failed.value) == "access outbox: OSError"
    await outbox.close()


async def test_an_outbox_that_was_never_opened_refuses_records(tmp_path: Path) -> None:
    outbox = AsyncOutbox(tmp_path / "outbox.sqlite")

    with pytest.raises(AccessAuditUnavailableError):
        await outbox.add(_entry(1))
    await outbox.close()
