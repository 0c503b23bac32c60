"""The Store: all durable state as the core sees it, and the records only it deals with
(API tokens with their `Role`, SMS `Subscriber`s).

`Store` is the `Outbox` and the `ReplyStore` plus alerts, deliveries, subscribers and
tokens. Adapters (adapters/store) implement it for SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from broadcaster.audit import AuditEntry
from broadcaster.ports.alerts import (
    AlertEvent,
    AlertState,
    DeliveryRecord,
    DeliveryState,
    InsertResult,
    NewAlert,
    PlannedDelivery,
    StoredAlert,
)
from broadcaster.ports.outbox import Outbox
from broadcaster.ports.reply_store import ReplyStore


class Role(StrEnum):
    ISSUER = "issuer"
    APPROVER = "approver"
    RESPONDER = "responder"
    ADMIN = "admin"


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


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Someone who gets SMS alerts. `phone` is E.164 and unique; `groups` filter who gets
    an alert aimed at some groups; an opted-out subscriber gets nothing until opted in. A
    flagged one (`flagged` says why, e.g. "21614 not a mobile number") gets nothing until an
    admin updates the record, which clears the flag."""

    phone: str
    lat: float | None = None
    lon: float | None = None
    area_code: str | None = None
    language: str = "en-US"
    groups: tuple[str, ...] = ()
    opted_out_at: datetime | None = None
    id: int | None = None
    created_at: datetime | None = None
    flagged: str | None = None
    flagged_at: datetime | None = None


class Store(Outbox, ReplyStore, Protocol):
    """Durable state. Every write has committed when its coroutine returns."""

    async def migrate(self) -> int:
        """Bring the schema to the newest version; return that version."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    async def schema_version(self) -> int:
        """The newest migration applied to the database (0 when none): readiness compares
        it with the version this code expects."""
        ...

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        """Store an alert once: idempotent on `idempotency_key` and on CAP
        sender+identifier+sent. Returns after the commit. An `id` already used by a
        different alert raises StoreError. When it is created (in any state), the same
        transaction appends `new.audit` to the audit log, in order; a repeat appends nothing.

        When the alert is created in state `accepted`, the same transaction also
        - inserts `new.deliveries` (state pending, due now, `new.priority`, expires_at =
          alert.expires);
        - for an Update or Cancel, for each alert named by `alert.references` (matched on
          sender, identifier and sent, see `alerts.models.reference_parts`): sets that
          alert's state to `superseded` (Update) or `cancelled` (Cancel) and its
          `superseded_by` to this alert, turns its pending
          deliveries to `cancelled` in one statement, and plans this alert to every
          (channel, recipient) of that alert in a REACHED_STATES state (duplicates of
          `new.deliveries` are skipped)."""
        ...

    async def delivery_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        """channel -> state -> count for one alert's deliveries."""
        ...

    async def delivery_counts_for(
        self, alert_ids: Sequence[str]
    ) -> dict[str, dict[str, dict[str, int]]]:
        """alert id -> channel -> state -> count for the deliveries of every alert in
        `alert_ids`, in one grouped query: each entry equals `delivery_counts(id)`. An id
        with no deliveries (unknown ids included) is absent, not mapped to {}; repeated ids
        count once. An empty `alert_ids` returns {} without querying. At most a page of
        alerts (500 ids) is expected."""
        ...

    async def list_deliveries(
        self, alert_id: str, *, limit: int, after_id: int | None = None
    ) -> list[DeliveryRecord]:
        """One alert's deliveries by id, `after_id` pages forward."""
        ...

    async def superseded_by(self, alert_id: str) -> list[str]:
        """Ids of the alerts that this Update/Cancel stopped (oldest first)."""
        ...

    async def record_receipt(
        self, provider_ref: str, state: DeliveryState, error: str | None, at: datetime
    ) -> bool:
        """Apply a provider's delivery receipt to the delivery it sent as `provider_ref`:
        `delivered`, `undelivered` or `failed` (with the provider's error). Only a delivery
        in `sent` or `delivered` moves (a late "delivered" never overwrites a failure);
        returns whether one did."""
        ...

    async def upsert_subscribers(
        self, subscribers: Sequence[Subscriber], now: datetime
    ) -> tuple[int, int]:
        """Insert or update by phone, in one transaction; returns (created, updated). An
        update replaces position, area code, language and groups, never the opt-out state
        (an import must not re-subscribe someone who said STOP) nor the flag (clearing it
        is `flag_subscriber(phone, None, None)`, which the admin API does on an update)."""
        ...

    async def get_subscriber(self, phone: str) -> Subscriber | None: ...

    async def list_subscribers(
        self, *, limit: int, after_id: int | None = None
    ) -> list[Subscriber]:
        """By id; `after_id` pages forward."""
        ...

    async def delete_subscriber(self, phone: str) -> bool:
        """True when a subscriber was deleted."""
        ...

    async def set_opted_out(self, phone: str, at: datetime | None) -> bool:
        """Opt out at `at`, or back in with None; True when the subscriber exists."""
        ...

    async def flag_subscriber(self, phone: str, reason: str | None, at: datetime | None) -> bool:
        """Flag with `reason` at `at` (the provider refused the number: not texted again until
        an admin fixes the record), or clear the flag with None; True when the subscriber
        exists. The opt-out state is not touched."""
        ...

    async def active_subscribers(self) -> list[Subscriber]:
        """Every subscriber neither opted out nor flagged (the SMS audience index is built
        from these)."""
        ...

    async def subscribers_version(self) -> int:
        """A number that grows with every write to the subscribers, by any process: when it
        moved, an audience index built before is out of date."""
        ...

    async def get_alert(self, alert_id: str) -> StoredAlert | None: ...

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[StoredAlert]:
        """The stored alerts among `alert_ids`, in no particular order (unknown ids skipped)."""
        ...

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        """Newest first; `before_seq` pages backwards."""
        ...

    async def count_alerts(self) -> int: ...

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        """Alert events with a seq above `seq`, oldest first, at most `limit`."""
        ...

    async def last_event_seq(self) -> int:
        """The highest alert event seq (0 when there is none)."""
        ...

    async def public_alerts(self, now: datetime, limit: int) -> list[StoredAlert]:
        """Alerts in force: accepted (not cancelled, not superseded, not pending approval),
        not a Cancel, not expired at `now`; newest first, at most `limit`. Exercises and
        tests included (callers decide)."""
        ...

    async def successor_of(self, alert_id: str) -> str | None:
        """The id of the Update/Cancel that stopped this alert, if any."""
        ...

    async def approve_alert(
        self,
        alert_id: str,
        deliveries: Sequence[PlannedDelivery],
        priority: int,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        """Approve an alert `pending_approval`, in one transaction: it becomes `accepted`
        (decided_by/at/reason set; the alert event is recorded by trigger), `deliveries` are
        inserted as `insert_alert` inserts them for an accepted alert (due at `at`), an
        Update/Cancel stops the alerts it references exactly as `insert_alert` does, and
        `audit` is appended. None (nothing written) when the alert is not pending approval
        (or does not exist)."""
        ...

    async def reject_alert(
        self,
        alert_id: str,
        state: AlertState,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        """Move an alert `pending_approval` to `state` (rejected or expired_unapproved) with
        decided_by/at/reason, and append `audit`, in one transaction. None (nothing
        written) when it is not pending approval (or does not exist)."""
        ...

    async def pending_alerts(self, received_before: datetime, limit: int) -> list[StoredAlert]:
        """Alerts still `pending_approval` received before `received_before`, oldest
        first, at most `limit`."""
        ...

    async def create_token(self, token: ApiToken) -> None: ...

    async def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, revoked or expired ones included: callers check."""
        ...

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked and expired ones included, oldest first."""
        ...

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        """Revoke (at `at`) the token with this id, or every token of this name, that is not
        revoked yet, and append `audit(revoked)` (unless None) in the same transaction; give
        the tokens revoked now. Exactly one of `token_id` and `name`."""
        ...
