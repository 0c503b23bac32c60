"""`broadcaster backup`: a consistent copy of the SQLite database while the service runs.

Contract (`backup_database(url, dest)`):
- `url` must be a `sqlite:///` file URL; PostgreSQL (and `:memory:`) raise `ConfigError`
  naming what to use instead (`pg_dump`: PostgreSQL's own tool does it better than we could).
- `dest` must not exist (a backup never overwrites anything, least of all an older backup);
  its folder must. Otherwise `ConfigError`.
- The copy is made with SQLite's online backup API in one step, i.e. inside one read
  transaction: in WAL mode, writers (the running service) are never blocked by it and the
  copy is the database as it was at one instant, every committed transaction before it whole
  and nothing after it. The copy is written to a temporary name beside `dest`, checked
  (`PRAGMA integrity_check`), switched to the rollback journal (one self-contained file) and
  only then renamed to `dest`, so `dest` is never a partial copy.
- Returns what the copy holds (rows per table of interest); a copy that fails its check
  raises `StoreError` and is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

from broadcaster.cli_backup import BackupReport
from broadcaster.errors import ConfigError, StoreError

_SQLITE_PREFIX = "sqlite:///"
# What the report counts: the tables an operator recognises, in this order.
COUNTED = ("alerts", "deliveries", "replies", "subscribers", "audit_log")


def source_path(url: str) -> Path:
    """The SQLite file `url` names; ConfigError for anything that is not one."""
    if url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        raise ConfigError(
            "database.url",
            "backup copies SQLite databases; for PostgreSQL use pg_dump (see README, Backups)",
        )
    path = url[len(_SQLITE_PREFIX) :] if url.startswith(_SQLITE_PREFIX) else ""
    if not path or path == ":memory:":
        raise ConfigError("database.url", "backup needs a sqlite:/// file database")
    return Path(path)


async def backup_database(url: str, dest: Path) -> BackupReport:
    """Copy the database at `url` to `dest` (see the module docstring)."""
    source = source_path(url)
    # sqlite3 and file checks block: they run in a thread, never stalling a caller's loop.
    # A thread cannot be stopped: on cancellation (Ctrl-C) it is told to drop the copy
    # instead of publishing it, and waited for, so no unaudited copy is left behind.
    cancelled = threading.Event()
    copying = asyncio.ensure_future(asyncio.to_thread(_copy, source, dest, cancelled))
    try:
        return await asyncio.shield(copying)
    except asyncio.CancelledError:
        cancelled.set()
        with contextlib.suppress(Exception):
            # Stopped after the thread's last check: the copy exists but is not audited.
            finished = await copying
            finished.path.unlink(missing_ok=True)
        raise


def _copy(source: Path, dest: Path, cancelled: threading.Event) -> BackupReport:
    try:
        return _copy_checked(source, dest, cancelled)
    except OSError as exc:  # a folder we may not read, a full disk ...: a runtime failure
        raise StoreError(f"backup to {dest} failed: {exc}") from exc


def _copy_checked(source: Path, dest: Path, cancelled: threading.Event) -> BackupReport:
    if not source.is_file():
        raise ConfigError("database.url", f"no database file at {source}")
    if dest.exists():
        raise ConfigError("DEST", f"{dest} exists; a backup never overwrites a file")
    if not dest.parent.is_dir():
        raise ConfigError("DEST", f"no folder {dest.parent}")
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        with (
            contextlib.closing(
                sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
            ) as src,
            contextlib.closing(sqlite3.connect(partial)) as out,
        ):
            src.execute("PRAGMA busy_timeout = 10000")  # a checkpoint may hold a lock briefly
            src.backup(out)  # all pages in one step: one read transaction, one instant
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal
            problems = [row[0] for row in out.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise StoreError(f"the copy failed its integrity check: {problems[:3]}")
            tables = {row[0] for row in out.execute("SELECT name FROM sqlite_master")}
            rows = {
                name: int(out.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608
                for name in COUNTED
                if name in tables
            }
        if cancelled.is_set():
            raise StoreError("backup cancelled; no copy was kept")
        _publish(partial, dest)
    except FileExistsError:
        raise ConfigError("DEST", f"{dest} exists; a backup never overwrites a file") from None
    except sqlite3.Error as exc:
        raise StoreError(f"backup of {source} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(dest.resolve(), dest.stat().st_size, rows)


def _publish(partial: Path, dest: Path) -> None:
    """Make the finished copy `dest`, never replacing a file that appeared meanwhile: a hard
    link where the filesystem has them, else an exclusive create and a byte copy (FAT or SMB
    backup drives), synced before it counts."""
    try:
        os.link(partial, dest)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here
    try:
        with open(dest, "xb") as target, open(partial, "rb") as copy:
            shutil.copyfileobj(copy, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
    except FileExistsError:
        raise
    except BaseException:
        dest.unlink(missing_ok=True)  # ours (made with "x"): never a partial dest
        raise
