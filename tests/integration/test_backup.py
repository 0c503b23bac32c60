"""`broadcaster backup`: a consistent copy of the SQLite database taken while the service
takes alerts, audited; what it cannot or must not copy is refused with exit 2."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from adapters.main import main
from adapters.store import open_store
from broadcaster.audit import verify_log
from tests.conftest import RunningService
from tests.support.public_web import post_alert


def config(folder: Path, url: str) -> Path:
    path = folder / "backup.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    return path


async def test_a_backup_taken_under_load_is_whole_and_audited(
    app: RunningService, tmp_path: Path
) -> None:
    """While alerts keep arriving, the copy holds every alert committed before it started,
    none of those after it ended, an intact audit chain, and no -wal file; the live log
    records the backup."""
    for n in range(20):
        await post_alert(app, f"Before the backup {n}")
    before = {a.id for a in await app.service.store.list_alerts(limit=1000)}
    stop = asyncio.Event()

    async def keep_posting() -> None:
        n = 0
        while not stop.is_set():
            await post_alert(app, f"During the backup {n}")
            n += 1

    writer = asyncio.create_task(keep_posting())
    dest = tmp_path / "copy.db"
    settings = config(tmp_path, app.service.settings.database.url)
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.main",
        "backup",
        "--config",
        str(settings),
        str(dest),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await cli.communicate()
    after = {a.id for a in await app.service.store.list_alerts(limit=100_000)}
    stop.set()
    await writer
    assert cli.returncode == 0, err.decode()
    assert out.decode().startswith(f"backed up to {dest} (")
    assert not (tmp_path / "copy.db-wal").exists()

    copy = await open_store(f"sqlite:///{dest}")
    try:
        copied = {a.id for a in await copy.list_alerts(limit=100_000)}
        assert before <= copied <= after
        assert (await verify_log(copy)).ok
    finally:
        await copy.close()
    rows = await app.service.store.audit_rows(0, 100_000)
    [backup] = [r for r in rows if r.action == "database.backup"]
    assert backup.actor == "cli"
    assert backup.detail["file"] == str(dest)
    assert backup.detail["rows_alerts"] == len(copied)


def test_postgresql_an_existing_file_and_a_missing_folder_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL points to pg_dump; an existing destination is never overwritten; a folder
    that does not exist is named: each exit 2 with one line on stderr."""
    live = tmp_path / "live.db"
    settings = config(tmp_path, f"sqlite:///{live}")
    assert (
        main(["token", "create", "--role", "admin", "--name", "a", "--config", str(settings)]) == 0
    )
    existing = tmp_path / "old-backup.db"
    existing.write_bytes(b"an older backup")
    (tmp_path / "pg").mkdir()
    cases = [
        (
            config(tmp_path / "pg", "postgresql://postgres@127.0.0.1/test"),
            tmp_path / "x.db",
            "pg_dump",
        ),
        (settings, existing, "never overwrites"),
        (settings, tmp_path / "no-such-folder" / "x.db", "no folder"),
    ]
    capsys.readouterr()
    for conf, dest, says in cases:
        assert main(["backup", "--config", str(conf), str(dest)]) == 2
        assert says in capsys.readouterr().err
    assert existing.read_bytes() == b"an older backup"
