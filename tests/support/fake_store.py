"""An in-memory Store for unit tests: the same contract as the real ones, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from alerts.models import format_cap_time
from broadcaster.audit import AuditEntry, AuditRecord, chain_hash
from broadcaster.errors import StoreError
from broadcaster.ports import ApiToken, InsertResult, NewAlert, StoredAlert


class MemoryStore:
    def __init__(self) -> None:
        self.alerts: list[StoredAlert] = []
        self.tokens: dict[str, ApiToken] = {}
        self.closed = False
        self.token_lookups = 0
        self.audit: list[AuditRecord] = []
        # (alert id, PlannedDelivery) of every alert inserted: intake tests check planning.
        self.planned: list[tuple[str, object]] = []

    async def migrate(self) -> int:
        return 1

    async def close(self) -> None:
        self.closed = True

    async def ping(self) -> None:
        if self.closed:
            raise StoreError("closed")

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        triple = (new.alert.sender, new.alert.identifier, format_cap_time(new.alert.sent))
        for stored in self.alerts:
            same_key = new.idempotency_key and stored.idempotency_key == new.idempotency_key
            a = stored.alert
            if same_key or (a.sender, a.identifier, format_cap_time(a.sent)) == triple:
                return InsertResult(alert=stored, created=False)
        fields = StoredAlert.__dataclass_fields__
        stored = StoredAlert(
            seq=len(self.alerts) + 1,
            **{f: getattr(new, f) for f in fields if f != "seq" and hasattr(new, f)},
        )
        self.alerts.append(stored)
        self.planned.extend((new.id, d) for d in new.deliveries)
        for entry in new.audit:  # with the alert, as the real stores do
            await self.append_audit(entry)
        return InsertResult(alert=stored, created=True)

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        return next((a for a in self.alerts if a.id == alert_id), None)

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        rows = [a for a in reversed(self.alerts) if before_seq is None or a.seq < before_seq]
        return rows[:limit]

    async def count_alerts(self) -> int:
        return len(self.alerts)

    async def create_token(self, token: ApiToken) -> None:
        self.tokens[token.token_hash] = token

    async def find_token(self, token_hash: str) -> ApiToken | None:
        self.token_lookups += 1
        return self.tokens.get(token_hash)

    async def list_tokens(self) -> list[ApiToken]:
        return sorted(self.tokens.values(), key=lambda t: (t.created_at, t.id))

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        revoked = []
        for key, token in self.tokens.items():
            chosen = token.id == token_id if token_id is not None else token.name == name
            if chosen and token.revoked_at is None:
                self.tokens[key] = replace(token, revoked_at=at)
                revoked.append(self.tokens[key])
        entry = audit(revoked)
        if entry is not None:
            await self.append_audit(entry)
        return revoked

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        prev = self.audit[-1].hash if self.audit else None
        row = AuditRecord(
            len(self.audit) + 1,
            entry.at,
            entry.actor,
            entry.action,
            dict(entry.detail),
            prev,
            chain_hash(prev, entry),
        )
        self.audit.append(row)
        return row

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]:
        return [r for r in self.audit if r.seq > after_seq][:limit]

    def revoke_all(self, when: object) -> None:
        for key, token in self.tokens.items():
            self.tokens[key] = replace(token, revoked_at=when)  # type: ignore[arg-type]
