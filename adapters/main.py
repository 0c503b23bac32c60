"""The composition root: the one place where adapters are chosen and wired to the core.

`broadcaster` (the console script) enters here so that `broadcaster/` never imports an adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from adapters.server import serve
from adapters.store import open_store
from broadcaster import cli


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, cli.Wiring(open_store=open_store, serve=serve))


if __name__ == "__main__":
    sys.exit(main())
