"""The one-step cancel's `alert.cancel` audit row commits with the Cancel itself, on every
backend: the whole service over HTTP on SQLite and on PostgreSQL (a schema of its own).

Atomicity is shown by a database trigger that refuses `alert.cancel` audit rows: the Cancel
must then be refused too (nothing stored, nothing stopped), not stored without its record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broadcaster.ports import AlertState, Role
from tests.conftest import RunningService, start_service
from tests.integration.conftest import postgres_schema
from tests.integration.engine import alert_body

# Refuses the audit row of a cancel, whoever writes it (SQLite, then PostgreSQL spelling).
_REFUSE_SQLITE = (
    "CREATE TRIGGER refuse_cancel_audit BEFORE INSERT ON audit_log "
    "WHEN NEW.action = 'alert.cancel' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
)
_REFUSE_POSTGRES = """
CREATE FUNCTION {schema}.refuse_cancel_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit refused';
END $$;
CREATE TRIGGER refuse_cancel_audit BEFORE INSERT ON {schema}.audit_log FOR EACH ROW
    WHEN (NEW.action = 'alert.cancel') EXECUTE FUNCTION {schema}.refuse_cancel_audit();
"""


class Desk:
    """The running service, and a way to make its database refuse (or again accept)
    `alert.cancel` audit rows from outside the service."""

    def __init__(
        self,
        app: RunningService,
        refuse: Callable[[], Awaitable[None]],
        allow: Callable[[], Awaitable[None]],
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.allow = allow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    if request.param == "sqlite":
        path = tmp_path / "desk.db"

        async def refuse_sqlite() -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(_REFUSE_SQLITE)

        async def allow_sqlite() -> None:
            with sqlite3.connect(path) as conn:
                conn.execute("DROP TRIGGER refuse_cancel_audit")

        async for app in start_service(tmp_path, database={"url": f"sqlite:///{path}"}):
            yield Desk(app, refuse_sqlite, allow_sqlite)
        return

    async with postgres_schema() as (dsn, schema_name, admin):

        async def refuse_postgres() -> None:
            await admin.execute(_REFUSE_POSTGRES.format(schema=schema_name))

        async def allow_postgres() -> None:
            await admin.execute(f"DROP TRIGGER refuse_cancel_audit ON {schema_name}.audit_log")

        url = f"{dsn}?search_path={schema_name}"
        async for app in start_service(tmp_path, database={"url": url}):
            yield Desk(app, refuse_postgres, allow_postgres)


async def post(
    app: RunningService, path: str, body: Any, role: Role = Role.APPROVER
) -> tuple[int, dict[str, Any]]:
    async with app.http.post(app.url + path, json=body, headers=app.auth(role)) as response:
        return response.status, await response.json()


async def alert_actions(app: RunningService) -> list[str]:
    """The alert rows of the audit log (a token's first use of a route adds its own row)."""
    rows = await app.service.store.audit_rows(0, 1000)
    return [r.action for r in rows if r.action.startswith("alert.")]


async def test_the_cancel_and_its_audit_row_commit_together(desk: Desk) -> None:
    """A cancel commits with its `alert.cancel` row (actor, reason, ids, template) or not at all."""
    app, store = desk.app, desk.app.service.store
    status, original = await post(app, "/v1/alerts", alert_body(), Role.ISSUER)
    assert status == 201, original
    cancel_path = f"/v1/alerts/{original['id']}/cancel"
    # Audit row refused: 503, and no Cancel stored, nothing stopped, no audit row at all.
    await desk.refuse()
    alerts_before, audit_before = await store.count_alerts(), await alert_actions(app)
    status, error = await post(app, cancel_path, {"reason": "sent in error"})
    assert (status, error["error"]) == (503, "store_unavailable")
    assert await store.count_alerts() == alerts_before
    assert await alert_actions(app) == audit_before
    stored = await store.get_alert(original["id"])
    assert stored is not None
    assert stored.state is AlertState.ACCEPTED

    # Allowed again: `alert.cancel` right after the Cancel's `alert.create`, timed at its
    # receipt, with the actor and detail the handler always wrote.
    await desk.allow()
    status, cancel = await post(app, cancel_path, {"reason": "sent in error"})
    assert status == 201, cancel
    rows = await store.audit_rows(0, 1000)
    [index] = [i for i, r in enumerate(rows) if r.action == "alert.cancel"]
    created, cancelled = rows[index - 1], rows[index]
    assert (created.action, created.detail["id"]) == ("alert.create", cancel["id"])
    approver_id = {t.name: t.id for t in await store.list_tokens()}["test-approver"]
    assert (cancelled.actor, dict(cancelled.detail)) == (
        "test-approver",
        {
            "alert_id": original["id"],
            "cancel_id": cancel["id"],
            "reason": "sent in error",
            "template": "false_alarm",
            "token_id": approver_id,
        },
    )
    correction = await store.get_alert(cancel["id"])
    assert correction is not None
    assert cancelled.at == correction.received_at
    stored = await store.get_alert(original["id"])
    assert stored is not None
    assert stored.state is AlertState.CANCELLED
