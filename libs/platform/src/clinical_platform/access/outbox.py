"""The access-record outbox: records not yet acknowledged by Kafka, in a local SQLite file.

Unlike the event log's state store (a rebuildable cache, ``synchronous=NORMAL``), this file is
the only copy of a record until Kafka has it, so every commit is fsynced (``synchronous=FULL``):
a record the RPC waited for survives a crash of the process or the machine.

`AsyncOutbox` runs every SQLite call on one worker thread (the event loop never waits on an
fsync) and commits concurrent inserts together, one fsync for all of them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    key BLOB NOT NULL,
    value BLOB NOT NULL
)
"""


class AccessAuditUnavailableError(Exception):
    """An access could not be recorded durably; the data must not be served."""


@dataclass(frozen=True)
class OutboxEntry:
    """One serialized access record waiting for Kafka."""

    record_id: str
    key: bytes
    value: bytes
    seq: int = 0


class AccessOutbox:
    """The SQLite file. Not thread-safe: `AsyncOutbox` calls it from one thread only."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the first byte: records name patients and staff (SQLite gives the
        # -wal and -shm files the database file's permissions).
        os.close(os.open(self._path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def add(self, entries: Sequence[OutboxEntry]) -> None:
        """Insert in one fsynced transaction; an id already pending is kept once."""
        db = self._connection()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR IGNORE INTO pending (record_id, key, value) VALUES (?, ?, ?)",
                [(e.record_id, e.key, e.value) for e in entries],
            )

    def pending(self, limit: int) -> list[OutboxEntry]:
        """The oldest pending records, in the order they were recorded."""
        rows = self._connection().execute(
            "SELECT seq, record_id, key, value FROM pending ORDER BY seq LIMIT ?", (limit,)
        )
        return [OutboxEntry(record_id, key, value, seq) for seq, record_id, key, value in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        db = self._connection()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM pending WHERE seq = ?", [(seq,) for seq in seqs])

    def count(self) -> int:
        (count,) = self._connection().execute("SELECT COUNT(*) FROM pending").fetchone()
        return int(count)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise AccessAuditUnavailableError("the access outbox is not open")
        return self._db


class AsyncOutbox:
    """`AccessOutbox` for the event loop: one worker thread, group-committed inserts."""

    def __init__(self, path: Path) -> None:
        self._outbox = AccessOutbox(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="access-outbox")
        self._queued: list[tuple[OutboxEntry, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        await self._call(self._outbox.open)

    async def close(self) -> None:
        """Wait for the commit in progress, close the file and end the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            await asyncio.shield(self._committer)
        await self._call(self._outbox.close)
        self._thread.shutdown(wait=True)

    async def add(self, entry: OutboxEntry) -> None:
        """Return once the entry is on disk; raise `AccessAuditUnavailableError` if it cannot be.

        Inserts that arrive while a commit is running wait for the next one, which takes them
        all: one fsync per round, however many requests are being served.
        """
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((entry, committed))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued(), name="access-outbox")
        # Shielded: a cancelled RPC must not cancel the commit other RPCs are waiting for.
        await asyncio.shield(committed)

    async def pending(self, limit: int) -> list[OutboxEntry]:
        return await self._call(self._outbox.pending, limit)

    async def remove(self, seqs: Sequence[int]) -> None:
        await self._call(self._outbox.remove, seqs)

    async def count(self) -> int:
        return await self._call(self._outbox.count)

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await self._call(self._outbox.add, [entry for entry, _ in batch])
            except AccessAuditUnavailableError as failed:
                outcome: BaseException | None = failed
            except Exception as failed:
                # A full disk, a read-only file, a closed outbox: the RPC must fail closed. Only
                # the error's type is kept, as SQLite's messages may quote the file's path.
                outcome = AccessAuditUnavailableError(f"access outbox: {type(failed).__name__}")
            else:
                outcome = None
            for _entry, committed in batch:
                if committed.done():
                    continue
                if outcome is None:
                    committed.set_result(None)
                else:
                    committed.set_exception(outcome)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)
