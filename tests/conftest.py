"""Fixtures shared by the whole suite: a real broker, and the whole service on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.server import running_service
from broadcaster.auth import create_token
from broadcaster.config import load_settings
from broadcaster.ports import Role
from broadcaster.service import Service
from tests.support.broker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, on a free port."""
    instance = Broker(tmp_path / "broker")
    instance.start()
    yield instance
    instance.stop()


class RunningService:
    """The service under test, with an HTTP session and tokens for each role."""

    def __init__(self, service: Service, url: str, http: aiohttp.ClientSession) -> None:
        self.service = service
        self.url = url
        self.http = http
        self.tokens: dict[Role, str] = {}

    def auth(self, role: Role = Role.ISSUER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def start_service(
    tmp_path: Path, *, wiring: Mapping[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[RunningService]:
    """The whole service on loopback, settings `overrides` over the test defaults, with
    `wiring` passed to `running_service` (extra channels, a triage), a token per role."""
    overrides.setdefault("database", {"url": f"sqlite:///{tmp_path / 'broadcaster.db'}"})
    overrides.setdefault("http", {}).setdefault("port", 0)
    settings = load_settings(None, **overrides)
    async with (
        running_service(settings, **(wiring or {})) as (service, url),
        aiohttp.ClientSession() as http,
    ):
        running = RunningService(service, url, http)
        for role in Role:
            running.tokens[role], _ = await create_token(
                service.store, role=role, name=f"test-{role.value}"
            )
        yield running


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The whole service on SQLite, listening on a free loopback port (no MQTT)."""
    async for running in start_service(tmp_path, approval={"two_person_severities": []}):
        yield running
