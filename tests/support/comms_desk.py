"""Helpers for the comms-desk tests: the whole service on loopback with the given channels,
calls to its API as a role, issuing an alert, and reading the audit log and public pages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from broadcaster.ports import Channel, Role
from tests.conftest import RunningService, start_service
from tests.integration.engine import alert_body

MARKET = {"description": "Market St", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 2}}


@contextlib.asynccontextmanager
async def desk(
    tmp_path: Path, extra_channels: Mapping[str, Channel], **overrides: Any
) -> AsyncIterator[RunningService]:
    """The whole service on loopback with these channels and a token per role."""
    overrides.setdefault("database", {"url": f"sqlite:///{tmp_path / 'desk.db'}"})
    overrides.setdefault("http", {"port": 0})
    overrides.setdefault("delivery", {"poll_seconds": 0.05, "shutdown_grace_seconds": 1.0})
    wiring = {"extra_channels": extra_channels}
    services = start_service(tmp_path, wiring=wiring, **overrides)
    # aclosing: a test that fails stops the service now, not when the generator is collected.
    async with contextlib.aclosing(services):
        async for running in services:
            yield running


async def call(
    app: RunningService, method: str, path: str, role: Role, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with app.http.request(
        method, app.url + path, json=body, headers={**app.auth(role), **headers}
    ) as response:
        return response.status, await response.json()


async def issue(app: RunningService, role: Role = Role.ISSUER, **fields: Any) -> dict[str, Any]:
    status, view = await call(app, "POST", "/v1/alerts", role, alert_body(**fields))
    assert status == 201, view
    return view


async def audit_actions(app: RunningService, action: str) -> list[dict[str, Any]]:
    rows = await app.service.store.audit_rows(0, 1000)
    return [{"actor": r.actor, **r.detail} for r in rows if r.action == action]


async def page_status(app: RunningService, alert_id: str) -> int:
    async with app.http.get(f"{app.url}/alerts/{alert_id}") as response:
        return response.status
