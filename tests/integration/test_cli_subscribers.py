"""`broadcaster subscribers import`: good rows stored in E.164, bad rows listed by line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.main import main
from adapters.store.sqlite import SqliteStore


def test_import_stores_good_rows_and_lists_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 with every refused row named by line; the valid rows are stored."""
    config = tmp_path / "b.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "b.db"}"\n')
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(
        "phone,lat,lon,language,groups\n"
        "07911 123456,53.48,-2.24,en-GB,residents\n"
        "+447911123457,,,cy,businesses;residents\n"
        "12345,,,en,\n"
    )
    code = main(["subscribers", "import", str(csv_path), "--config", str(config), "--region", "GB"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "imported 2 subscribers (2 new, 0 updated)" in out
    assert "refused line 4:" in err

    async def stored() -> list[tuple[str, str, tuple[str, ...]]]:
        store = await SqliteStore.open(tmp_path / "b.db")
        try:
            rows = await store.list_subscribers(limit=10)
        finally:
            await store.close()
        return [(s.phone, s.language, s.groups) for s in rows]

    assert asyncio.run(stored()) == [
        ("+447911123456", "en-GB", ("residents",)),
        ("+447911123457", "cy", ("businesses", "residents")),
    ]
    # Importing again updates rather than duplicates.
    csv_path.write_text("phone,language\n+447911123456,cy\n")
    assert main(["subscribers", "import", str(csv_path), "--config", str(config)]) == 0
    assert "(0 new, 1 updated)" in capsys.readouterr().out
