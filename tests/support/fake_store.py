"""An in-memory Store for unit tests: the same contract as the real ones, no I/O."""

from __future__ import annotations

from dataclasses import replace

from alerts.models import format_cap_time
from broadcaster.errors import StoreError
from broadcaster.ports import ApiToken, InsertResult, NewAlert, StoredAlert


class MemoryStore:
    def __init__(self) -> None:
        self.alerts: list[StoredAlert] = []
        self.tokens: dict[str, ApiToken] = {}
        self.closed = False
        self.token_lookups = 0
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
            seq=len(self.alerts) + 1, **{f: getattr(new, f) for f in fields if f != "seq"}
        )
        self.alerts.append(stored)
        self.planned.extend((new.id, d) for d in new.deliveries)
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

    def revoke_all(self, when: object) -> None:
        for key, token in self.tokens.items():
            self.tokens[key] = replace(token, revoked_at=when)  # type: ignore[arg-type]
