"""Ports: the Protocols the core needs from the edges, and the records that cross them.

Adapters implement these; the core receives them through constructors and never imports an
adapter. Records are frozen dataclasses so a store cannot hand out shared mutable state.
Every time in a record is timezone-aware; stores return UTC.

Import every name from `broadcaster.ports`; the modules below are how the package is laid
out, not part of its contract:

- `alerts`: alert and delivery records and their states (`AlertState`, `DeliveryState`,
  `REACHED_STATES`, `NewAlert`, `StoredAlert`, `ClaimedDelivery`, `DeliveryRecord` ...).
- `replies`: reply records and states, the `Triage` classifier and the `ReturnChannel`.
- `channels`: the `Channel` Protocol and what one send carries (`Outbound`, `SendReceipt`,
  `ChannelLimits`).
- `outbox`: the `Outbox` Protocol (the deliveries table as the dispatcher sees it).
- `reply_store`: the `ReplyStore` Protocol (replies, poll votes, cursors, audit log).
- `store`: the `Store` Protocol (`Outbox` + `ReplyStore` + the rest of durable state) and
  the records only it deals with (`Role`, `ApiToken`, `Subscriber`).

`alerts` and `replies` import no other port module; `channels`, `outbox` and
`reply_store` import only those; `store` imports `outbox` and `reply_store`.
"""

from broadcaster.ports.alerts import (
    REACHED_STATES,
    AlertEvent,
    AlertEventKind,
    AlertState,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    InsertResult,
    NewAlert,
    OutboxDepth,
    PlannedDelivery,
    StoredAlert,
)
from broadcaster.ports.channels import Channel, ChannelLimits, Outbound, SendReceipt
from broadcaster.ports.outbox import Outbox
from broadcaster.ports.replies import (
    NewReply,
    Reply,
    ReplyEvent,
    ReplyEventKind,
    ReplyInsertResult,
    ReplySource,
    ReplyState,
    ReturnChannel,
    StoredReply,
    Triage,
    TriageResult,
)
from broadcaster.ports.reply_store import ReplyStore
from broadcaster.ports.store import ApiToken, Role, Store, Subscriber

__all__ = [
    "REACHED_STATES",
    "AlertEvent",
    "AlertEventKind",
    "AlertState",
    "ApiToken",
    "Channel",
    "ChannelLimits",
    "ClaimedDelivery",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryState",
    "InsertResult",
    "NewAlert",
    "NewReply",
    "Outbound",
    "Outbox",
    "OutboxDepth",
    "PlannedDelivery",
    "Reply",
    "ReplyEvent",
    "ReplyEventKind",
    "ReplyInsertResult",
    "ReplySource",
    "ReplyState",
    "ReplyStore",
    "ReturnChannel",
    "Role",
    "SendReceipt",
    "Store",
    "StoredAlert",
    "StoredReply",
    "Subscriber",
    "Triage",
    "TriageResult",
]
