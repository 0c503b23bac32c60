"""Ports: the Protocols the core needs from the edges, and the records that cross them.

Adapters implement these; the core receives them through constructors and never imports an
adapter. Records are frozen dataclasses so a store cannot hand out shared mutable state.
Every time in a record is timezone-aware; stores return UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from alerts.models import Alert


class Role(StrEnum):
    ISSUER = "issuer"
    APPROVER = "approver"
    RESPONDER = "responder"
    ADMIN = "admin"


class AlertState(StrEnum):
    """Where an accepted alert stands in its life (deliveries have their own states)."""

    ACCEPTED = "accepted"
    PENDING_APPROVAL = "pending_approval"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert ready to be stored. `idempotency_key` is already scoped to its issuer."""

    id: str
    alert: Alert
    channels: tuple[str, ...]
    source: str
    state: AlertState
    created_by: str | None
    idempotency_key: str | None
    body_hash: str
    cap_xml: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as stored; `seq` orders alerts by arrival and pages lists."""

    seq: int
    id: str
    alert: Alert
    channels: tuple[str, ...]
    source: str
    state: AlertState
    created_by: str | None
    idempotency_key: str | None
    body_hash: str
    cap_xml: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class InsertResult:
    """`created` is False when an equal alert (same idempotency key, or same CAP
    sender+identifier+sent) was already stored; `alert` is then that earlier alert, and the
    caller compares `body_hash` to spot a key reused for a different body."""

    alert: StoredAlert
    created: bool


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as stored: only the SHA-256 of the secret is kept."""

    id: str
    name: str
    role: Role
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class Store(Protocol):
    """Durable state. Every write has committed when its coroutine returns."""

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        """Store an alert once: idempotent on `idempotency_key` and on CAP
        sender+identifier+sent. Returns after the commit. An `id` already used by a
        different alert raises StoreError."""
        ...

    async def get_alert(self, alert_id: str) -> StoredAlert | None: ...

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        """Newest first; `before_seq` pages backwards."""
        ...

    async def count_alerts(self) -> int: ...

    async def create_token(self, token: ApiToken) -> None: ...

    async def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, revoked or expired ones included: callers check."""
        ...
