"""The audit log everywhere: `audit verify` / `audit export`, `GET /v1/audit`, and the rows
that alerts, subscribers, tokens and their use leave."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.main import main
from adapters.store.sqlite import SqliteStore
from broadcaster.audit import AuditRecord, chain_hash, verify_chain
from broadcaster.ports import Role
from tests.conftest import RunningService


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "b.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "b.db"}"\n')
    return config


def _fill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Three audited CLI actions: two token creations and an import."""
    config = _config(tmp_path)
    for role in ("issuer", "admin"):
        args = ["token", "create", "--role", role, "--name", f"desk-{role}"]
        assert main([*args, "--config", str(config)]) == 0
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("phone,language\n+447911123456,en-GB\n12345,en\n")
    assert main(["subscribers", "import", str(csv_path), "--config", str(config)]) == 1
    capsys.readouterr()
    return config


def _rows(tmp_path: Path) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        store = await SqliteStore.open(tmp_path / "b.db")
        try:
            return await store.audit_rows(0, 1000)
        finally:
            await store.close()

    return asyncio.run(read())


def test_verify_ok_counts_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`audit verify` prints "ok: N rows" and exits 0 on an intact chain (CLI actions audited)."""
    config = _fill(tmp_path, capsys)
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "ok: 3 rows"
    rows = _rows(tmp_path)
    assert [(r.actor, r.action) for r in rows] == [
        ("cli", "token.create"),
        ("cli", "token.create"),
        ("cli", "subscribers.import"),
    ]
    assert rows[2].detail == {
        "file": "people.csv",
        "rows": 2,
        "created": 1,
        "updated": 0,
        "refused": 1,
    }
    assert rows[0].detail["name"] == "desk-issuer"
    assert "token_hash" not in rows[0].detail


def test_verify_on_an_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty log is intact: "ok: 0 rows"."""
    assert main(["audit", "verify", "--config", str(_config(tmp_path))]) == 0
    assert capsys.readouterr().out.strip() == "ok: 0 rows"


def test_verify_names_an_edited_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A row edited through a direct DB connection: exit 1 naming its seq and what differs."""
    config = _fill(tmp_path, capsys)
    seq = _rows(tmp_path)[1].seq
    with sqlite3.connect(tmp_path / "b.db") as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = ?", (seq,))
    assert main(["audit", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"broken at seq {seq} (after 1 intact rows)" in out
    assert "does not match its content" in out


def test_verify_names_the_row_after_a_deleted_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deleted row is found at the next row, whose prev_hash no longer matches."""
    config = _fill(tmp_path, capsys)
    rows = _rows(tmp_path)
    with sqlite3.connect(tmp_path / "b.db") as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (rows[1].seq,))
    assert main(["audit", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"broken at seq {rows[2].seq}" in out
    assert "prev_hash" in out


def test_export_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`audit export` prints one JSON line per row with hash and prev_hash; --since filters."""
    config = _fill(tmp_path, capsys)
    assert main(["audit", "export", "--config", str(config)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["seq"] for line in lines] == [r.seq for r in _rows(tmp_path)]
    assert lines[0]["prev_hash"] is None
    previous = None
    for line in lines:
        assert set(line) == {"seq", "at", "actor", "action", "detail", "prev_hash", "hash"}
        assert line["prev_hash"] == previous
        previous = line["hash"]
    since = lines[2]["at"]
    assert main(["audit", "export", "--config", str(config), "--since", since]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [3]
    assert main(["audit", "export", "--config", str(config), "--since", "yesterday"]) == 2


def _recheck(lines: list[dict[str, Any]]) -> None:
    """Each exported line hashes to its `hash` from its own fields (the export verifies alone)."""
    rows = [
        AuditRecord(
            seq=x["seq"],
            at=datetime.fromisoformat(x["at"]),
            actor=x["actor"],
            action=x["action"],
            detail=x["detail"],
            prev_hash=x["prev_hash"],
            hash=x["hash"],
        )
        for x in lines
    ]
    assert verify_chain(rows) is None
    for row in rows:
        assert chain_hash(row.prev_hash, row.entry()) == row.hash


async def _get(app: RunningService, path: str, role: Role | None) -> tuple[int, Any]:
    headers = app.auth(role) if role else {}
    async with app.http.get(app.url + path, headers=headers) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def test_audit_api_is_admin_only(app: RunningService) -> None:
    """GET /v1/audit: 401 without a token, 403 for non-admin roles, 200 pages for admin."""
    assert (await _get(app, "/v1/audit", None))[0] == 401
    for role in (Role.ISSUER, Role.APPROVER, Role.RESPONDER):
        assert (await _get(app, "/v1/audit", role))[0] == 403
    status, body = await _get(app, "/v1/audit?limit=2", Role.ADMIN)
    assert status == 200
    assert [r["action"] for r in body["rows"]] == ["token.create", "token.create"]
    assert body["next"] == f"/v1/audit?after={body['rows'][-1]['seq']}&limit=2"
    status, rest = await _get(app, body["next"], Role.ADMIN)
    assert status == 200
    assert rest["rows"][0]["prev_hash"] == body["rows"][-1]["hash"]
    assert (await _get(app, "/v1/audit?limit=0", Role.ADMIN))[0] == 400
    assert (await _get(app, "/v1/audit?format=xml", Role.ADMIN))[0] == 400


async def test_audit_api_streams_json_lines(app: RunningService) -> None:
    """GET /v1/audit?format=jsonl streams every row as a JSON line that verifies on its own."""
    for n in range(3):
        async with app.http.get(
            f"{app.url}/v1/alerts?limit={n + 1}", headers=app.auth(Role.ISSUER)
        ) as resp:
            assert resp.status == 200
    async with app.http.get(
        f"{app.url}/v1/audit?format=jsonl", headers=app.auth(Role.ADMIN)
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    rows = await app.service.store.audit_rows(0, 1000)
    assert [x["seq"] for x in lines] == [r.seq for r in rows]
    _recheck(lines)
    async with app.http.get(
        f"{app.url}/v1/audit?format=jsonl&after={rows[-3].seq}", headers=app.auth(Role.ADMIN)
    ) as resp:
        assert len((await resp.text()).splitlines()) == 2


async def test_actions_are_audited(app: RunningService) -> None:
    """Alert create, subscriber create/delete and token use (once a minute) leave rows."""
    alert = {"event": "Gas leak", "headline": "Avoid Market St", "severity": "Severe"}
    for _ in range(2):
        async with app.http.post(
            f"{app.url}/v1/alerts", json=alert, headers=app.auth(Role.ISSUER)
        ) as resp:
            assert resp.status == 201
            alert_id = (await resp.json())["id"]
    async with app.http.post(
        f"{app.url}/v1/subscribers", json={"phone": "+447911123456"}, headers=app.auth(Role.ADMIN)
    ) as resp:
        assert resp.status == 201
        subscriber_id = (await resp.json())["id"]
    async with app.http.delete(
        f"{app.url}/v1/subscribers/%2B447911123456", headers=app.auth(Role.ADMIN)
    ) as resp:
        assert resp.status == 204
    rows = [r for r in await app.service.store.audit_rows(0, 1000) if r.action != "token.create"]
    tokens = {t.name: t.id for t in await app.service.store.list_tokens()}
    issuer_id = tokens["test-issuer"]
    used = [r for r in rows if r.action == "token.used"]
    assert [(r.actor, r.detail["route"]) for r in used] == [
        ("test-issuer", "POST /v1/alerts"),
        ("test-admin", "POST /v1/subscribers"),
    ]
    assert used[0].detail["token_id"] == issuer_id
    created = [r for r in rows if r.action == "alert.create"]
    assert len(created) == 2
    assert created[-1].actor == "test-issuer"
    assert created[-1].detail == {
        "id": alert_id,
        "severity": "Severe",
        "status": "Actual",
        "msg_type": "Alert",
        "state": "accepted",
        "source": "rest",
        "format": "json",
        "token_id": issuer_id,
    }
    changes = [(r.action, r.detail) for r in rows if r.action.startswith("subscriber.")]
    assert [a for a, _ in changes] == ["subscriber.create", "subscriber.delete"]
    assert all(d["id"] == subscriber_id for _, d in changes)
    assert "+447911123456" not in str(rows)
    assert verify_chain(await app.service.store.audit_rows(0, 1000)) is None
