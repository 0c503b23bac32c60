"""The responders' desk: the replies they work through, what they do with each, and answers to
the people who sent them.

Contract:
- `list_replies` / `get_reply` give replies with the size of their near-duplicate cluster.
- `act(reply_id, action, actor, note)`: action `acknowledge`, `escalate` or `dismiss` sets
  the reply's state (acknowledged / escalated / dismissed), `state_by` = the actor (a token
  name) and `state_at` = now, and appends `reply.<action>` to the audit log with the reply
  id, the previous and new state and the note, in one transaction. Any state may follow any
  other (a dismissal can be undone by escalating). Unknown reply: `ReplyNotFound` (404).
- `act_on_similar(shown, action, actor, note)`, after `act` on `shown`: the same action on
  the other reports of its near-duplicate cluster that stood behind it when the responder
  saw it: older than it and still new. A report another responder already handled keeps
  their decision, and one that arrived later is left to be seen. Each is its own audited
  action, with `with_reply` = `shown.id` in its audit row. Returns how many.
- `respond(reply_id, text, actor)`: sends `text` to the reply's sender on the channel it came
  from (`return_channels`, by source: SMS and X when configured). Web tips and MQTT replies
  have no return channel (`NoReturnChannel`, 409), nor does a reply without a sender, nor an
  SMS sender who opted out (STOP). Success is audited as `reply.respond` (reply id, source,
  the provider's reference and the text; never the sender's number). Provider failures
  leave as the channel raised them (Transient/PermanentDeliveryError) and are not audited.
- Every state change wakes the reply feed, so open streams see it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from broadcaster.audit import AuditEntry
from broadcaster.errors import IntakeError
from broadcaster.ports import ReplySource, ReplyState, ReturnChannel, Store, StoredReply
from broadcaster.reply_feed import cluster_count, cluster_sizes

log = logging.getLogger(__name__)

ACTIONS: dict[str, ReplyState] = {
    "acknowledge": ReplyState.ACKNOWLEDGED,
    "escalate": ReplyState.ESCALATED,
    "dismiss": ReplyState.DISMISSED,
}
MAX_NOTE = 1000
# Reports of one cluster read per query when an action takes them along.
CLUSTER_PAGE = 500


class ReplyNotFound(IntakeError):
    status = 404
    code = "not_found"


class NoReturnChannel(IntakeError):
    """The reply came from somewhere we cannot answer (web, MQTT, no sender, opted out)."""

    status = 409
    code = "no_return_channel"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ResponderDesk:
    def __init__(
        self,
        store: Store,
        *,
        on_change: Callable[[], object] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._on_change = on_change
        self._now = now
        # Filled at start-up by the composition root (adapters/server.py).
        self.return_channels: dict[ReplySource, ReturnChannel] = {}

    async def with_counts(self, replies: list[StoredReply]) -> list[tuple[StoredReply, int]]:
        sizes = await cluster_sizes(self._store, replies)
        return [(r, cluster_count(r, sizes)) for r in replies]

    async def get_reply(self, reply_id: int) -> tuple[StoredReply, int]:
        stored = await self._store.get_reply(reply_id)
        if stored is None:
            raise ReplyNotFound(f"no reply {reply_id}")
        return (await self.with_counts([stored]))[0]

    async def act(
        self,
        reply_id: int,
        action: str,
        actor: str,
        note: str | None = None,
        *,
        with_reply: int | None = None,
    ) -> StoredReply:
        """Set a reply's state and audit it; `with_reply` names the reply whose action took
        this one along (a near-duplicate handled with its cluster), recorded in the audit."""
        state = ACTIONS.get(action)
        if state is None:
            raise IntakeError(f"unknown action {action!r}", code="unknown_action")
        note = (note or "").strip() or None
        if note is not None and len(note) > MAX_NOTE:
            raise IntakeError(f"note: at most {MAX_NOTE} characters", code="invalid_note")
        before = await self._store.get_reply(reply_id)
        if before is None:
            raise ReplyNotFound(f"no reply {reply_id}")
        at = self._now()
        detail: dict[str, object] = {
            "reply_id": reply_id,
            "from": before.state.value,
            "to": state.value,
        }
        if note is not None:
            detail["note"] = note
        if with_reply is not None:
            detail["with_reply"] = with_reply
        audit = AuditEntry(at=at, actor=actor, action=f"reply.{action}", detail=detail)
        stored = await self._store.set_reply_state(reply_id, state, actor, at, audit)
        if stored is None:  # purged meanwhile
            raise ReplyNotFound(f"no reply {reply_id}")
        log.info("reply %s %s by %s", reply_id, state.value, actor)
        self._changed()
        return stored

    async def act_on_similar(
        self, shown: StoredReply, action: str, actor: str, note: str | None = None
    ) -> int:
        """See the module docstring."""
        if shown.cluster_id is None:
            return 0
        count = 0
        before = shown.id
        while True:
            page = await self._store.list_replies(
                limit=CLUSTER_PAGE, cluster=shown.cluster_id, state=ReplyState.NEW, before_id=before
            )
            for other in page:
                try:
                    await self.act(other.id, action, actor, note, with_reply=shown.id)
                except ReplyNotFound:  # purged meanwhile (retention): nothing to do for it
                    continue
                count += 1
            if len(page) < CLUSTER_PAGE:
                return count
            before = page[-1].id

    async def respond(self, reply_id: int, text: str, actor: str) -> tuple[StoredReply, str]:
        """Answer the sender; returns the reply and the provider's reference."""
        stored = await self._store.get_reply(reply_id)
        if stored is None:
            raise ReplyNotFound(f"no reply {reply_id}")
        channel = self.return_channels.get(stored.source)
        if stored.source in (ReplySource.WEB, ReplySource.MQTT):
            raise NoReturnChannel(f"a {stored.source.value} reply has no return channel")
        if channel is None:
            raise NoReturnChannel(f"the {stored.source.value} channel is not configured")
        if not stored.sender:
            raise NoReturnChannel("this reply has no sender to answer")
        if stored.source is ReplySource.SMS:
            subscriber = await self._store.get_subscriber(stored.sender)
            if subscriber is not None and subscriber.opted_out_at is not None:
                raise NoReturnChannel("the sender has opted out of SMS (STOP)")
        reference = await channel.answer(stored, text)
        await self._store.append_audit(
            AuditEntry(
                at=self._now(),
                actor=actor,
                action="reply.respond",
                detail={
                    "reply_id": reply_id,
                    "source": stored.source.value,
                    "provider_ref": reference,
                    "text": text,
                },
            )
        )
        log.info("reply %s answered on %s by %s", reply_id, stored.source.value, actor)
        return stored, reference

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
