"""The composition root: the one place where adapters are chosen and wired to the core.

`broadcaster` (the console script) enters here so that `broadcaster/` never imports an adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvloop

from adapters.demo import run_demo
from adapters.server import drain, serve
from adapters.store import open_store
from adapters.store.backup import backup_database
from broadcaster import cli


def main(argv: Sequence[str] | None = None) -> int:
    # uvloop roughly halves the event loop's own cost per request (measured in bench/);
    # aiohttp, aiomqtt and aiosqlite all run on it unchanged.
    return cli.main(
        argv,
        cli.Wiring(
            open_store=open_store,
            serve=serve,
            drain=drain,
            demo=run_demo,
            run=uvloop.run,
            backup=backup_database,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
