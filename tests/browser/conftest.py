"""Browser fixtures: Debian's Chromium driven by Playwright (async API, on the test's own
event loop), and the whole service on loopback.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium (CI
installs it with apt) and skip, saying why, when it is missing. axe-core comes from npm
(`make test` installs it under tests/browser/.node); the accessibility tests skip without it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import RunningService, start_service

CHROMIUM = Path(os.environ.get("BROADCASTER_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).parent / ".node" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, or a skip saying it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: the browser tests need Debian's chromium package")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """A headless Chromium for this test."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(chromium))
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def axe_script() -> Path:
    """axe-core's script, installed by `make test` from npm."""
    if not AXE.exists():
        pytest.skip(f"{AXE} missing: `make test` installs it (npm install axe-core@4)")
    return AXE


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The whole service on a free loopback port, with a short SSE keep-alive."""
    async for running in start_service(
        tmp_path,
        http={"sse_keepalive_seconds": 1.0},
        approval={"two_person_severities": []},
    ):
        yield running
