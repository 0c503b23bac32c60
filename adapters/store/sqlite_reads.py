"""Grouped reads on the SQLite store's read-only connection.

Contract: `await GroupedReader(conn).fetch(sql, params)` returns the rows of one statement,
as `aiosqlite`'s `execute_fetchall` does. Every read queued while a group runs goes in the
next group: one trip to the connection's thread (a future, a wake-up, a callback back) per
group rather than per read, which under load is most of a point query's cost. Each read is
still its own statement: one that fails raises `StoreError` (the sqlite3 error its cause)
for its caller alone; any other exception reaches its caller as it was raised. If the
connection cannot run the group at all (closed), every read in it fails with `StoreError`.
A cancelled caller's result is dropped.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiosqlite

from broadcaster.errors import StoreError

_T = TypeVar("_T")


def on_connection_thread(
    conn: aiosqlite.Connection, function: Callable[..., _T], *args: Any
) -> Awaitable[_T]:
    """Run `function(*args)` on `conn`'s own thread, queued behind its other work: aiosqlite's
    private `_execute` (untyped), the one primitive that runs a whole group of statements
    in one hop to that thread."""
    execute = cast(Callable[..., Awaitable[_T]], conn._execute)
    return execute(function, *args)


@dataclass(slots=True)
class _Read:
    sql: str
    params: Sequence[object]
    future: asyncio.Future[list[Any]]


class GroupedReader:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._reads: list[_Read] = []
        self._task: asyncio.Task[None] | None = None

    async def fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._reads.append(_Read(sql, params, future))
        if self._task is None:
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._reads:
                group, self._reads = self._reads, []
                try:
                    # aiosqlite's own queueing primitive, as the store's writer uses it: the
                    # whole group is one call on the connection's thread.
                    outcomes = await on_connection_thread(
                        self._conn, _run_group, self._conn._conn, group
                    )
                except Exception as exc:  # noqa: BLE001 - e.g. closed: fail the group, not hang it
                    outcomes = [StoreError(f"sqlite read failed: {exc!r}")] * len(group)
                except BaseException:
                    self._reads[:0] = group  # failed below with the rest
                    raise
                for read, outcome in zip(group, outcomes, strict=True):
                    if read.future.done():  # the caller was cancelled
                        continue
                    if isinstance(outcome, BaseException):
                        read.future.set_exception(outcome)
                    else:
                        read.future.set_result(outcome)
        finally:
            self._task = None
            for read in self._reads:  # only left on cancellation: never leave a caller hanging
                if not read.future.done():
                    read.future.set_exception(StoreError("sqlite reader stopped"))
            self._reads = []


def _run_group(conn: sqlite3.Connection, group: list[_Read]) -> list[Any]:
    """On the connection's thread: each read's rows, or the exception that fails only it."""
    outcomes: list[Any] = []
    for read in group:
        try:
            outcomes.append(conn.execute(read.sql, read.params).fetchall())
        except sqlite3.Error as exc:
            error = StoreError(f"sqlite read failed: {exc}")
            error.__cause__ = exc  # as the store's `_translated` chains it
            outcomes.append(error)
        except Exception as exc:  # noqa: BLE001 - handed to its caller as a lone read raised it
            outcomes.append(exc)
    return outcomes
