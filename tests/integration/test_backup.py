"""`broadcaster backup`: a consistent copy of the SQLite database taken while the service
takes alerts, audited; what it cannot or must not copy is refused with exit 2."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters.main import main
from adapters.store import backup, open_store
from broadcaster.audit import verify_log
from broadcaster.cli_backup import run_backup
from broadcaster.config import load_settings
from broadcaster.errors import ConfigError, StoreError
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
    """PostgreSQL points to pg_dump without being connected to (nothing listens at its
    port); an existing destination is never overwritten; a folder that does not exist is
    named: each exit 2 with one line on stderr."""
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
            config(tmp_path / "pg", "postgresql://postgres@127.0.0.1:1/test"),
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


def test_a_cancelled_backup_keeps_no_copy(tmp_path: Path) -> None:
    """The copying thread, once told to stop (what Ctrl-C and SIGTERM do) by the time it
    has copied, publishes nothing: no DEST, no partial file beside it."""
    live = tmp_path / "live.db"
    assert (
        main(
            [
                "token",
                "create",
                "--role",
                "admin",
                "--name",
                "a",
                "--config",
                str(config(tmp_path, f"sqlite:///{live}")),
            ]
        )
        == 0
    )
    stop = threading.Event()
    stop.set()
    with pytest.raises(StoreError, match="cancelled"):
        backup._copy(live, tmp_path / "copy.db", stop)
    assert [p.name for p in tmp_path.iterdir() if "copy.db" in p.name] == []


def test_without_hard_links_the_copy_is_still_never_an_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem without hard links (FAT, SMB) the finished copy is written to DEST by
    an exclusive create; an existing DEST is still refused."""
    live = tmp_path / "live.db"
    settings = config(tmp_path, f"sqlite:///{live}")
    assert (
        main(["token", "create", "--role", "admin", "--name", "a", "--config", str(settings)]) == 0
    )

    def no_links(*_: object) -> None:
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(backup.os, "link", no_links)
    report = backup._copy(live, tmp_path / "copy.db", threading.Event())
    assert report.rows["audit_log"] >= 1
    assert report.path.stat().st_size == report.size_bytes
    with pytest.raises(ConfigError, match="never overwrites"):
        backup._copy(live, tmp_path / "copy.db", threading.Event())


async def test_a_copy_whose_audit_row_cannot_be_written_is_removed(tmp_path: Path) -> None:
    """If the live database refuses the audit row, the copy is deleted: no copy of personal
    data goes unrecorded."""
    live = tmp_path / "live.db"
    store = await open_store(f"sqlite:///{live}")
    await store.close()

    class RefusingStore:
        async def append_audit(self, *_: object) -> object:
            raise StoreError("attempt to write a readonly database")

        async def close(self) -> None:
            return None

    async def open_refusing(_: str) -> Any:
        return RefusingStore()

    settings = load_settings(None, database={"url": f"sqlite:///{live}"})
    dest = tmp_path / "copy.db"
    with pytest.raises(StoreError):
        await run_backup(settings, dest, backup.backup_database, open_refusing)
    assert not dest.exists()
