"""`broadcaster backup --config FILE DEST`: a consistent copy of the database, audited.

Contract: the copy itself is the edge's (`Wiring.backup`, `adapters/store/backup.py`: SQLite's
online backup API, while the service runs; PostgreSQL is refused with a pointer to pg_dump).
Here: the copy is made, its rows per table printed, and the backup recorded in the live
database's audit log (`database.backup`, actor `cli`, with the file's name, size and
counts), so records management can see when copies of personal data were taken and where.
The audit row is written after the copy, so the copy does not hold it; a copy whose audit
row cannot be written is removed.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from broadcaster.audit import record as audit_record
from broadcaster.config import Settings
from broadcaster.errors import ConfigError
from broadcaster.ports import Store


@dataclass(frozen=True)
class BackupReport:
    """Where the copy is, its size, and its rows per table (those it has of the ones an
    operator recognises: alerts, deliveries, replies, subscribers, audit_log)."""

    path: Path
    size_bytes: int
    rows: dict[str, int]


# (database URL, destination) -> the report; raises ConfigError for what it cannot copy.
Backup = Callable[[str, Path], Awaitable[BackupReport]]


def add_backup_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup", help="copy the SQLite database while the service runs (a new file)"
    )
    backup.add_argument("dest", help="the file to write; it must not exist")
    backup.add_argument("--config", required=True, help="TOML configuration file")


def check_backup(settings: Settings, dest: Path) -> None:
    """ConfigError for what no backup can do, before anything is opened: a PostgreSQL
    database (opening it would migrate it only to refuse), an existing DEST, a missing
    folder. The edge checks again when it copies (a file may appear meanwhile)."""
    url = settings.database.url
    if url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        raise ConfigError(
            "database.url",
            "backup copies SQLite databases; for PostgreSQL use pg_dump (see README, Backups)",
        )
    if dest.exists():
        raise ConfigError("DEST", f"{dest} exists; a backup never overwrites a file")
    if not dest.parent.is_dir():
        raise ConfigError("DEST", f"no folder {dest.parent}")


async def run_backup(
    settings: Settings,
    dest: Path,
    backup: Backup,
    open_store: Callable[[str], Awaitable[Store]],
) -> BackupReport:
    """Copy, then audit the copy in the live database. The store is opened first, so a
    database this process may not write fails before any copy exists; a copy whose audit
    row cannot be written is removed (no copy of personal data goes unrecorded)."""
    store = await open_store(settings.database.url)
    try:
        report = await backup(settings.database.url, dest)
        try:
            await audit_record(
                store,
                "cli",
                "database.backup",
                file=str(report.path),
                size_bytes=report.size_bytes,
                **{f"rows_{name}": count for name, count in report.rows.items()},
            )
        except BaseException:
            report.path.unlink(missing_ok=True)
            raise
    finally:
        await store.close()
    return report


def describe(report: BackupReport) -> str:
    """One line an operator reads: where, how big, what it holds."""
    counts = ", ".join(f"{count} {name}" for name, count in report.rows.items())
    return f"backed up to {report.path} ({report.size_bytes} bytes: {counts})"
