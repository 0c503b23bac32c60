"""Ports: the Protocols the core needs from the edges, and the records that cross them.

Adapters implement these; the core receives them through constructors and never imports an
adapter. Records are frozen dataclasses so a store cannot hand out shared mutable state.
Every time in a record is timezone-aware; stores return UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from alerts.models import Alert
from broadcaster.audit import AuditEntry, AuditRecord


class Role(StrEnum):
    ISSUER = "issuer"
    APPROVER = "approver"
    RESPONDER = "responder"
    ADMIN = "admin"


class AlertState(StrEnum):
    """Where an accepted alert stands in its life (deliveries have their own states)."""

    ACCEPTED = "accepted"
    PENDING_APPROVAL = "pending_approval"
    # Referenced by a committed Cancel: nothing more of it is sent.
    CANCELLED = "cancelled"
    # Referenced by a committed Update: its pending deliveries stopped; the update replaces it.
    SUPERSEDED = "superseded"
    # Refused by an approver (two-person rule): never planned, never public.
    REJECTED = "rejected"
    # Nobody approved it within `approval.pending_expiry_minutes`: never planned, never public.
    EXPIRED_UNAPPROVED = "expired_unapproved"


class DeliveryState(StrEnum):
    """pending -> sending -> sent | failed | cancelled | expired; receipts later move a sent
    delivery to delivered | undelivered | failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


# States whose recipient has received the message, and so is owed the correction when the
# alert is updated or cancelled. A delivery `sending` at that moment is owed it only if it
# turns out sent: `finish_deliveries` plans the correction then.
REACHED_STATES: tuple[DeliveryState, ...] = (DeliveryState.SENT, DeliveryState.DELIVERED)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One message to send: the alert on `channel` to `recipient` (a phone number, an account,
    a webhook URL ...; opaque to the core)."""

    channel: str
    recipient: str


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
    # Written in the alert's own transaction, only when the alert is created in state
    # `accepted` (an alert pending approval plans nothing until it is approved).
    deliveries: tuple[PlannedDelivery, ...] = ()
    # Claim order of those deliveries: lower goes first (see planner.delivery_priority).
    priority: int = 0
    # The pre-approved template it was filled from (alerts.template_library), with the
    # values given, so that its ready correction can be filled from them.
    template: str | None = None
    template_values: tuple[tuple[str, str], ...] = ()


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
    template: str | None = None
    template_values: tuple[tuple[str, str], ...] = ()
    # Who approved or rejected it (a token name, or "system" when it expired unapproved),
    # when and why; None while nobody has.
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class AlertEventKind(StrEnum):
    """What an alert event tells the public: a new alert, an update of one, a cancellation."""

    CREATED = "created"
    UPDATED = "updated"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert became public (stored accepted, or approved later). `seq` only grows within
    one store and is the SSE event id; it may have gaps."""

    seq: int
    alert_id: str
    kind: AlertEventKind
    at: datetime


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


class ReplySource(StrEnum):
    """Where a reply from the public came in."""

    X = "x"
    SMS = "sms"
    WEB = "web"
    MQTT = "mqtt"


class ReplyState(StrEnum):
    """A responder's progress on a reply: every reply starts `new`."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class Reply:
    """A message from the public, as a source hands it over. `external_id` is the source's own
    id (X post id, Twilio MessageSid, MQTT payload id, a generated id for web tips): a reply is
    stored once per (source, external_id). `sender` is a phone number, an @handle or a tip's
    contact, None for an anonymous tip. `alert_id` is the alert it answers when the source
    says so (web tips, MQTT); otherwise the reply service links it. `in_reply_to` and
    `conversation_id` are the X posts it answers (its parent, its thread's first post)."""

    source: ReplySource
    external_id: str
    text: str
    received_at: datetime
    sender: str | None = None
    alert_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    media_url: str | None = None
    in_reply_to: str | None = None
    conversation_id: str | None = None


class TriageResult(Protocol):
    """What a classifier says about one text: categories (e.g. {"suspect", "hazard"}), a
    score in 0..1, and the entities it extracted (plates, places, times...; JSON-able)."""

    @property
    def categories(self) -> frozenset[str]: ...

    @property
    def score(self) -> float: ...

    @property
    def entities(self) -> object: ...


class Triage(Protocol):
    """A classifier: `classify(text)`, synchronous and pure."""

    def __call__(self, text: str, /) -> TriageResult: ...


@dataclass(frozen=True, slots=True)
class NewReply:
    """A linked and triaged reply, ready to be stored. `entities` is JSON-able."""

    reply: Reply
    categories: tuple[str, ...] = ()
    score: float | None = None
    entities: object = None
    # The id of the first reply of its near-duplicate cluster (None: in none yet).
    cluster_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredReply:
    """A reply as stored. `id` orders replies by arrival; `state`, `state_by`, `state_at` are
    a responder's handling of it; `cluster_id` groups near-identical reports."""

    id: int
    source: ReplySource
    external_id: str
    text: str
    received_at: datetime
    sender: str | None
    alert_id: str | None
    lat: float | None
    lon: float | None
    media_url: str | None
    in_reply_to: str | None
    categories: tuple[str, ...]
    score: float | None
    entities: object
    state: ReplyState = ReplyState.NEW
    state_by: str | None = None
    state_at: datetime | None = None
    cluster_id: int | None = None


class ReplyEventKind(StrEnum):
    """What a reply event tells responders: a new reply, or a change to one (state, cluster)."""

    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """A reply was stored or changed. `seq` only grows within one store (the responder
    stream's event id); it may have gaps."""

    seq: int
    reply_id: int
    kind: ReplyEventKind
    at: datetime


class ReturnChannel(Protocol):
    """Answers a reply's sender on the channel the reply came from (SMS, X)."""

    async def answer(self, reply: StoredReply, text: str) -> str:
        """Send `text` to the reply's sender; returns the provider's reference. Raises
        PayloadError when the text cannot go on this channel (too long), else
        TransientDeliveryError / PermanentDeliveryError as a channel's send does."""
        ...


@dataclass(frozen=True, slots=True)
class ReplyInsertResult:
    """`created` is False when (source, external_id) was already stored: `reply` is then the
    earlier one, unchanged."""

    reply: StoredReply
    created: bool


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one worker (state `sending`). `attempts` counts this attempt."""

    id: int
    alert_id: str
    channel: str
    recipient: str
    priority: int
    attempts: int
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of a claimed delivery. `state` is SENT, FAILED, CANCELLED, EXPIRED, or
    PENDING for a retry at `next_attempt_at`."""

    delivery_id: int
    state: DeliveryState
    at: datetime
    provider_ref: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as the API shows it."""

    id: int
    alert_id: str
    channel: str
    recipient: str
    state: DeliveryState
    priority: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    provider_ref: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """Open deliveries of one channel in one state (pending or sending), and the creation
    time of the oldest of them: the outbox gauges."""

    channel: str
    state: str
    count: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How fast and how wide a channel may send. Rates are in cost units per second (one
    unit per message; SMS counts segments). A limit of None is no limit."""

    # The whole channel, whatever the sender.
    rate_per_second: float | None = None
    burst: int = 1
    # Sender keys that share the load (SMS from-numbers; one account elsewhere).
    senders: tuple[str, ...] = ("default",)
    sender_rate_per_second: float | None = None
    sender_burst: int = 1
    # A provider quota per fixed window (X: posts per 15 minutes), corrected by its headers.
    window_limit: int | None = None
    window_seconds: float = 900.0
    # Sends in flight at once.
    concurrency: int = 16
    # Pace this fraction slower than the rates above, so jitter between our send and the
    # provider's count never shows a window over the limit (see TokenBucket).
    safety: float = 0.01


@dataclass(frozen=True, slots=True)
class Outbound:
    """One send: the claimed delivery, its alert, and the sender key the rate limiter chose."""

    delivery: ClaimedDelivery
    alert: StoredAlert
    sender: str


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The provider accepted the message. Rate fields carry the provider's own view of the
    budget (X's x-rate-limit-remaining / -reset, reset as epoch seconds) when it sends one."""

    provider_ref: str | None = None
    rate_remaining: int | None = None
    rate_reset_at: float | None = None


class Channel(Protocol):
    """Where messages go. Implementations live in adapters/ and render with alerts/."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> ChannelLimits: ...

    def audience(self, alert: Alert) -> Sequence[str]:
        """The recipients of `alert` on this channel, decided when the alert is planned."""
        ...

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        """Rate-limit units this message uses (1; SMS: its segment count). At least 1."""
        ...

    async def send(self, message: Outbound) -> SendReceipt:
        """Send once. Raises TransientDeliveryError (retry: timeouts, connection errors,
        5xx, 429 with retry_after) or PermanentDeliveryError (never retry this one)."""
        ...

    async def close(self) -> None: ...


class Outbox(Protocol):
    """The deliveries table as the dispatcher sees it. Every write has committed on return."""

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries of `channel`: state pending, next_attempt_at <=
        now, not expired (expires_at null or > now); most urgent first (priority, then id).
        They become `sending` with `lease_until`, attempts + 1. Returned in claim order.
        Concurrent claimers (threads, processes) never receive the same delivery."""
        ...

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Record outcomes of deliveries this worker holds (state `sending`); an outcome for
        a delivery no longer `sending` is ignored. Sets state, updated_at=at, provider_ref
        (when given), last_error (when given), next_attempt_at (retries), lease_until=null.
        A delivery that turns SENT after its alert was superseded or cancelled (it was in
        flight then) gets the correction planned to the same recipient, in the same
        transaction. Concurrent callers may share one commit."""
        ...

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Give back leased deliveries that were never attempted (shutdown): `sending` ->
        `pending`, attempts - 1, lease cleared, due at once."""
        ...

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        """Keep holding these `sending` deliveries (a worker waiting on a rate limit or an
        open circuit is alive): their lease now ends at `lease_until`."""
        ...

    async def reclaim_expired_leases(self, now: datetime) -> int:
        """`sending` deliveries whose lease ended before `now` (their process died) become
        `pending` and due at once; returns how many."""
        ...

    async def expire_deliveries(self, now: datetime) -> int:
        """`pending` deliveries whose expires_at <= now become `expired`; returns how many."""
        ...

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        """Take or renew, for `holder`, the lease of each channel in `channels` whose lease is
        free, ran out, or is already `holder`'s: it now ends `seconds` from the database's
        clock. Returns the channels `holder` holds. Atomic per channel: two processes never
        both get one. A one-process store (SQLite) returns every channel."""
        ...

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        """Give up `holder`'s leases of `channels`: anyone may take them `cooldown_seconds`
        from now (so sends of the last second and those of the next holder never share a
        rolling second)."""
        ...

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        """The current state of each of these alerts (unknown ids are left out)."""
        ...

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        """Deliveries still `pending` or `sending`, on `channels` when given (`drain` runs
        until this is 0 for the channels it can send on)."""
        ...

    async def outbox_depth(self) -> list[OutboxDepth]:
        """Per channel and open state (`pending`, `sending`): how many deliveries, and the
        oldest one's created_at. One grouped query; the metrics refresh calls it every few
        seconds, never per scrape."""
        ...


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
    ) -> list[StoredReply]:
        """Replies matching every filter given (`category` among its categories, received at
        or after `since`, in `state`). With `after_id`: those with a larger id, oldest first
        (for tailing). Otherwise newest first, `before_id` paging back."""
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
        different alert raises StoreError.

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
