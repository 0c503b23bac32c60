"""`/readyz` follows PostgreSQL: a `broadcaster serve` on a private PostgreSQL cluster is
ready, turns unready (503, the database check failing) within seconds of the server stopping,
and ready again once it is back (the pool reconnects; no restart of the service).

The cluster is private (initdb into a temporary directory, its own port and socket
directory, trust auth) so stopping it never touches the machine's shared PostgreSQL. initdb
refuses to run as root: as root the cluster runs as the `postgres` OS user (`runuser`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_engine_crash import start_serve, tail
from tests.support.pg_cluster import Cluster, private_cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with private_cluster() as made:
        yield made


async def _readyz(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with http.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=10)) as response:
        return response.status, await response.json()


async def _wait_for(
    http: aiohttp.ClientSession, url: str, status: int, within: float
) -> tuple[float, dict[str, object]]:
    """Poll /readyz until it answers `status`; the seconds it took and the last body."""
    started = time.monotonic()
    body: dict[str, object] = {}
    while True:
        got, body = await _readyz(http, url)
        if got == status:
            return time.monotonic() - started, body
        assert time.monotonic() - started < within, f"/readyz still {got} after {within} s: {body}"
        await asyncio.sleep(0.2)


async def test_readyz_follows_postgres_down_and_back(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text(
        f'[http]\nport = 0\n[database]\nurl = "{cluster.dsn}"\n'
        "[approval]\ntwo_person_severities = []\n"
    )
    log = tmp_path / "serve.log"
    serve, url = await start_serve(config, log)
    try:
        async with aiohttp.ClientSession() as http:
            _, body = await _wait_for(http, url, 200, within=10)
            assert body["checks"]["database"]["ok"] is True  # type: ignore[index]

            await asyncio.to_thread(cluster.stop)
            down_s, body = await _wait_for(http, url, 503, within=5)
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert checks["database"]["ok"] is False, body
            assert serve.returncode is None, tail(log)

            await asyncio.to_thread(cluster.start)
            up_s, body = await _wait_for(http, url, 200, within=15)
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert checks["database"]["ok"] is True, body
            assert serve.returncode is None, tail(log)
            print(f"/readyz: 503 {down_s:.2f} s after stop, 200 {up_s:.2f} s after start")
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await serve.wait()
            except TimeoutError:
                serve.kill()
                await serve.wait()
