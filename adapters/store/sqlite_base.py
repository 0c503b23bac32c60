"""What every part of `SqliteStore` shares: its connections and write queue, error
translation, and the two primitives the per-concern mixins are written with.

Contract:
- `SqliteBase` declares the state `SqliteStore.__init__` sets; each mixin (`sqlite_alerts`,
  `sqlite_deliveries`, `sqlite_replies`, `sqlite_directory`) subclasses it, so each is
  type-checked against the attributes it really uses.
- `_fetch(sql, params)` reads: on the read-only connection, grouped with concurrent reads
  (`sqlite_reads`), or for ":memory:" on the writer connection between batches.
- `_run_job(work)` runs `work` on the writer's thread inside the next batch transaction and
  returns its result once that transaction has committed. `_run_writer` is the one
  consumer of the queue: it takes every item waiting (up to `max_batch`), has
  `sqlite_batch` write them in one transaction and resolves each caller's future; no
  caller is left waiting, whether the batch fails or the writer is cancelled.
- `translated` is the one place sqlite3 exceptions become `StoreError`.
It is its own module because the mixins and the store all import it: it must import none
of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aiosqlite

from adapters.store.sqlite_batch import PendingFinish, PendingInsert, PendingJob, write_batch_sync
from adapters.store.sqlite_reads import GroupedReader, on_connection_thread
from broadcaster.errors import StoreError


@contextmanager
def translated(action: str) -> Iterator[None]:
    """The one place sqlite3 exceptions become StoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {action} failed: {exc}") from exc


class SqliteBase:
    """The state the mixins of `SqliteStore` rely on; `SqliteStore.__init__` sets it."""

    _writer: aiosqlite.Connection
    _write_lock: asyncio.Lock
    _queue: asyncio.Queue[PendingInsert | PendingJob | PendingFinish | None]
    _closed: bool
    _reads: GroupedReader | None
    _writer_task: asyncio.Task[None]
    _max_batch: int

    async def _run_job(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `work` on the writer inside the next batch transaction; returns its result
        after that transaction committed."""
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingJob(work, future))
        return await future

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("sqlite store is closed")

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        self._check_open()
        if self._reads is not None:
            return await self._reads.fetch(sql, params)
        with translated("read"):
            async with self._write_lock:
                return list(await self._writer.execute_fetchall(sql, params))

    async def _run_writer(self) -> None:
        """Group commit: take everything waiting, write it in one transaction, repeat.
        No deliberate delay: while one batch commits the next one accumulates."""
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                batch: list[PendingInsert | PendingJob | PendingFinish] = [item]
                stop = False
                while len(batch) < self._max_batch and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                await self._write_batch(batch)
                if stop:
                    return
        finally:
            # Only reached early on cancellation: fail whoever still waits, never hang them.
            while not self._queue.empty():
                left = self._queue.get_nowait()
                if left is not None and not left.future.done():
                    left.future.set_exception(StoreError("sqlite writer stopped"))

    async def _write_batch(self, batch: list[PendingInsert | PendingJob | PendingFinish]) -> None:
        """One transaction for the whole batch; resolves every future in it."""
        outcomes: list[Any]
        try:
            async with self._write_lock:
                with translated("insert batch"):
                    # The whole batch is one call on aiosqlite's thread: a round trip through
                    # the event loop per statement would make every batch wait on a busy
                    # loop several times. `_execute` is aiosqlite's own queueing primitive,
                    # used only here.
                    outcomes = await on_connection_thread(
                        self._writer, write_batch_sync, self._writer._conn, batch
                    )
        except StoreError as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:  # noqa: BLE001 - a bug here must fail callers, not hang them
            outcomes = [StoreError(f"sqlite insert batch failed: {exc!r}")] * len(batch)
        except BaseException:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreError("sqlite writer cancelled"))
            raise
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
