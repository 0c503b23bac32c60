"""A private PostgreSQL cluster for tests that stop and start the server.

initdb into a temporary directory, its own port and socket directory, trust auth, so stopping
it never touches the machine's shared PostgreSQL. initdb refuses to run as root: as root the
cluster runs as the `postgres` OS user (`runuser`). Skips the test when the server binaries
(Debian's /usr/lib/postgresql/*/bin) are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "postgres"


def _find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    pg_ctl: str
    data: Path
    sockets: Path
    port: int
    prefix: list[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-k {self.sockets} -p {self.port} -c listen_addresses=127.0.0.1"
        command = [*self.prefix, self.pg_ctl, "-D", str(self.data), "-w", "-t", "30"]
        log = self.data.parent / "postgres.log"
        subprocess.run(
            [*command, "-l", str(log), "-o", options, *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A started private cluster, stopped (immediate) and removed afterwards."""
    initdb = _find_bin("initdb")
    pg_ctl = _find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("initdb/pg_ctl not found: needs the PostgreSQL server binaries")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # initdb refuses root
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam(PG_USER)
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            pytest.skip("running as root without runuser or a `postgres` OS user for initdb")
        prefix = [runuser, "-u", PG_USER, "--"]
    # Not under pytest's tmp_path: as root that is private to root, and the postgres user
    # must own the cluster directory.
    base = Path(tempfile.mkdtemp(prefix="test-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    command = [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", PG_USER, "--no-sync"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        made = Cluster(pg_ctl, data, sockets, _free_port(), prefix)
        made.start()
        try:
            yield made
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                made._ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


__all__ = ["PG_USER", "Cluster", "private_cluster"]
