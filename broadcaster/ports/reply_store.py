"""The reply store: replies, their links to alerts, poll votes, source cursors and the
audit log, as the reply services see them.

`Store` extends this Protocol; a reply source (e.g. X mentions) needs only this part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from broadcaster.audit import AuditEntry, AuditRecord
from broadcaster.ports.replies import (
    NewReply,
    ReplyEvent,
    ReplyInsertResult,
    ReplySource,
    ReplyState,
    StoredReply,
)


class ReplyStore(Protocol):
    """Replies, their links to alerts, poll votes and source cursors. Writes have committed
    on return."""

    async def insert_reply(self, new: NewReply) -> ReplyInsertResult:
        """Store a reply once: a (source, external_id) already stored is left as it was and
        returned with created=False. An `alert_id` naming no alert raises StoreError."""
        ...

    async def find_reply(self, source: ReplySource, external_id: str) -> StoredReply | None: ...

    async def find_reply_and_sms_alert(
        self, source: ReplySource, external_id: str, phone: str | None
    ) -> tuple[StoredReply | None, str | None]:
        """`find_reply(source, external_id)` and `last_sms_alert(phone)` (None without a
        phone) in one round trip: an inbound SMS needs both before it is triaged."""
        ...

    async def get_reply(self, reply_id: int) -> StoredReply | None: ...

    async def get_replies(self, reply_ids: Sequence[int]) -> list[StoredReply]:
        """The replies of `reply_ids` that exist, in no particular order; one round trip."""
        ...

    async def list_replies(
        self,
        *,
        limit: int,
        category: str | None = None,
        since: datetime | None = None,
        state: ReplyState | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        cluster: int | None = None,
        alert: str | None = None,
    ) -> list[StoredReply]:
        """Replies matching every filter given (`category` among its categories, received at
        or after `since`, in `state`, of near-duplicate `cluster`, answering `alert`). With
        `after_id`: those with a larger id, oldest first (for tailing). Otherwise newest
        first, `before_id` paging back."""
        ...

    async def last_sms_alert(self, phone: str) -> str | None:
        """The alert of the newest SMS delivery sent (or delivered) to `phone`, if any."""
        ...

    async def alert_for_x_posts(self, post_ids: Sequence[str]) -> str | None:
        """The alert whose X delivery has one of `post_ids` as its provider reference (the
        first id that matches wins)."""
        ...

    async def get_cursor(self, name: str) -> str | None: ...

    async def set_cursor(self, name: str, value: str, at: datetime) -> None: ...

    async def record_poll_vote(
        self, alert_id: str, voter: str, option_key: str, reply_id: int | None, at: datetime
    ) -> bool:
        """One vote per voter per alert: insert, or replace the voter's earlier vote unless
        that one is newer than `at`. True when this vote now stands."""
        ...

    async def poll_tally(self, alert_id: str) -> dict[str, int]:
        """option key -> votes for one alert (options nobody chose are absent)."""
        ...

    async def set_reply_state(
        self, reply_id: int, state: ReplyState, by: str, at: datetime, audit: AuditEntry
    ) -> StoredReply | None:
        """Set a reply's state, state_by and state_at and append `audit`, in one transaction
        (a reply event `updated` is recorded with it). None (and nothing written) when the
        reply does not exist."""
        ...

    async def set_reply_cluster(self, reply_id: int, cluster_id: int) -> None:
        """Put a reply in a near-duplicate cluster (a reply event `updated` follows)."""
        ...

    async def cluster_counts(self, cluster_ids: Sequence[int]) -> dict[int, int]:
        """cluster id -> how many stored replies share it (ids with none are absent)."""
        ...

    async def reply_events_after(self, seq: int, limit: int) -> list[ReplyEvent]:
        """Reply events with a seq above `seq`, oldest first, at most `limit`."""
        ...

    async def last_reply_event_seq(self) -> int:
        """The highest reply event seq (0 when there is none)."""
        ...

    async def purge_replies(
        self, before: datetime, audit: Callable[[int], AuditEntry | None]
    ) -> int:
        """Delete replies received before `before`, their reply events and the poll votes
        they cast, and append `audit(count)` (unless it is None), in one transaction;
        returns the count."""
        ...

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append to the hash-chained audit log (see broadcaster.audit); writers are
        serialised so the chain never forks."""
        ...

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]:
        """Audit rows with a seq above `after_seq`, in seq order, at most `limit`."""
        ...
