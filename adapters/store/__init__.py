"""Store adapters: `open_store(url)` picks the backend from the URL and migrates it.

URLs:
- `sqlite:///relative/path.db` (relative to the working directory),
  `sqlite:////abs/path.db`, `sqlite:///:memory:` (private, for tests);
- `postgresql://...` or `postgres://...`, passed to asyncpg unchanged.
Any other scheme raises ValueError naming it; an unreachable database raises StoreError.
"""

from __future__ import annotations

from contextlib import suppress

from broadcaster.errors import StoreError
from broadcaster.ports import Store

__all__ = ["open_store"]

_SQLITE_PREFIX = "sqlite:///"


async def open_store(url: str) -> Store:
    """Open the store `url` names and bring its schema to the newest version."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    store: Store
    if scheme == "sqlite":
        path = url[len(_SQLITE_PREFIX) :] if url.startswith(_SQLITE_PREFIX) else ""
        if not path:
            raise ValueError(
                "sqlite store URL must be sqlite:///relative.db, sqlite:////abs/path.db "
                f"or sqlite:///:memory:, got {url!r}"
            )
        # Imported here so a deployment on one backend need not load the other's driver.
        from adapters.store.sqlite import SqliteStore

        store = await SqliteStore.open(path)
    elif scheme in ("postgresql", "postgres"):
        from adapters.store.postgres import PostgresStore

        store = await PostgresStore.open(url)
    else:
        raise ValueError(
            f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://"
        )
    try:
        await store.migrate()
    except BaseException:
        with suppress(StoreError):  # the migration error is the one to report
            await store.close()
        raise
    return store
