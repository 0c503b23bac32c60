"""`GET /v1/audit`: the audit log for admins, as JSON pages or streamed JSON lines.

Contract:
- Admin role only (401 without a valid token, 403 for other roles).
- `?after=SEQ&limit=N` (after 0.., default 0; limit 1..1000, default 100): `{"rows": [...],
  "next": "/v1/audit?after=..&limit=.."}` in seq order, `next` present while a full page
  came back. Each row is `broadcaster.audit.export_view`: seq, at, actor, action, detail,
  prev_hash, hash.
- `?format=jsonl[&after=SEQ]`: every row after `after` as JSON lines
  (`application/x-ndjson`), read from the store a page at a time and written as it goes,
  so a large log never sits in memory. The lines are those of `broadcaster audit export`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.access import authenticate
from adapters.http.errors import json_response
from broadcaster.audit import audit_pages, export_line, export_view
from broadcaster.errors import IntakeError
from broadcaster.ports import Role
from broadcaster.service import Service

MAX_PAGE = 1000


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise IntakeError(f"query parameter {name} must be an integer", code="bad_query") from None
    if not low <= value <= high:
        raise IntakeError(f"query parameter {name} must be {low} to {high}", code="bad_query")
    return value


class AuditApi:
    def __init__(self, service: Service) -> None:
        self._service = service

    async def get(self, request: web.Request) -> web.StreamResponse:
        await authenticate(request, self._service, Role.ADMIN)
        after = _int(request, "after", 0, 0, 2**62)
        fmt = request.query.get("format", "json")
        if fmt == "jsonl":
            return await self._stream(request, after)
        if fmt != "json":
            raise IntakeError("format must be json or jsonl", code="bad_query")
        limit = _int(request, "limit", 100, 1, MAX_PAGE)
        rows = await self._service.store.audit_rows(after, limit)
        body: dict[str, Any] = {"rows": [export_view(r) for r in rows]}
        if len(rows) == limit:
            body["next"] = f"/v1/audit?after={rows[-1].seq}&limit={limit}"
        return json_response(body)

    async def _stream(self, request: web.Request, after: int) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        async for rows in audit_pages(self._service.store, after_seq=after):
            await response.write(("\n".join(export_line(r) for r in rows) + "\n").encode())
        await response.write_eof()
        return response


def register_audit(app: web.Application, service: Service) -> None:
    app.router.add_get("/v1/audit", AuditApi(service).get)


__all__ = ["register_audit"]
