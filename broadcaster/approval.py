"""The two-person rule: alerts held `pending_approval` are approved or rejected by a second
person, or expire unapproved.

Contract:
- Intake holds an alert (never a Cancel) when its severity is in
  `approval.two_person_severities` or its scope in `approval.two_person_scopes`; nothing of
  it is planned, sent or published until it is approved.
- `approve(alert_id, approver, reason)`: only an alert `pending_approval` (else
  `NotPending`, 409); the approver must be another user than the one that issued it
  (`SelfApproval`, 403): a token is issued to a named person or desk, so neither the same
  token nor another token of the same name (case and surrounding spaces aside) may approve.
  The planner plans its deliveries as intake would have, and the store moves it to
  `accepted` with them, applies an Update's supersession, and appends the audit row
  (`alert.approve`: actor, reason) in ONE transaction (`Store.approve_alert`); then the
  dispatcher and the publication are woken. An Update holds the cancel fence over the alerts
  it stops while that commits, as intake does.
- `reject(alert_id, actor, reason)`: `pending_approval` -> `rejected`, with the reason and the
  audit row (`alert.reject`) in one transaction. A rejected alert is never planned nor public.
- `expire_pending(now)`: alerts still pending `pending_expiry_minutes` after they were
  received become `expired_unapproved` (actor "system", reason "not approved in time",
  audited as `alert.expire_unapproved`). A distinct state rather than `rejected`, so that the
  record says nobody decided. `run_expiry` does that every `interval` seconds.
- Every decision is conditional on the alert still being pending, so a concurrent approve and
  reject (or an approval racing the expiry) decide once; the loser gets `NotPending`.
- `reason` is required: 1 to 1,000 characters after trimming (else `PayloadError`, 422).
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.models import MsgType, reference_parts
from broadcaster.audit import AuditEntry, Principal, actor_detail
from broadcaster.errors import IntakeError, PayloadError, StoreError
from broadcaster.fence import CancelFence
from broadcaster.planner import Planner, delivery_priority
from broadcaster.ports import AlertState, Store, StoredAlert

log = logging.getLogger(__name__)

MAX_REASON = 1000
EXPIRY_REASON = "not approved in time"


class AlertNotFound(IntakeError):
    status = 404
    code = "not_found"


class NotPending(IntakeError):
    """The alert is not (or no longer) waiting for approval."""

    status = 409
    code = "not_pending"


class SelfApproval(IntakeError):
    """The two-person rule: the issuer may not approve their own alert."""

    status = 403
    code = "self_approval"


def clean_reason(reason: object) -> str:
    """The reason trimmed, or PayloadError: it is required and at most MAX_REASON long."""
    if not isinstance(reason, str) or not reason.strip():
        raise PayloadError("reason: required (say why)", code="reason_required")
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise PayloadError(f"reason: at most {MAX_REASON} characters")
    return text


def _user_name(name: str) -> str:
    """A token name as a person: compatibility forms folded (NFKC: full-width letters are
    the plain ones), case and spacing aside."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ApprovalDesk:
    def __init__(
        self,
        store: Store,
        planner: Planner,
        fence: CancelFence,
        *,
        pending_expiry: timedelta,
        on_planned: Callable[[], None] = lambda: None,
        on_published: Callable[[], None] = lambda: None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._planner = planner
        self._fence = fence
        self._pending_expiry = pending_expiry
        self._on_planned = on_planned
        self._on_published = on_published
        self._now = now

    async def _pending(self, alert_id: str) -> StoredAlert:
        stored = await self._store.get_alert(alert_id)
        if stored is None:
            raise AlertNotFound("no such alert")
        if stored.state is not AlertState.PENDING_APPROVAL:
            raise NotPending(f"alert {alert_id} is {stored.state.value}, not pending_approval")
        return stored

    async def _same_user(self, issuer_token_id: str, approver: Principal) -> bool:
        """Whether the issuing token and the approver are one user: the same token, or
        tokens of the same name (one person given a second token, with another role)."""
        if issuer_token_id == approver.id:
            return True
        name = _user_name(approver.name)
        tokens = await self._store.list_tokens()
        return any(t.id == issuer_token_id and _user_name(t.name) == name for t in tokens)

    async def approve(self, alert_id: str, approver: Principal, reason: object) -> StoredAlert:
        text = clean_reason(reason)
        stored = await self._pending(alert_id)
        if stored.created_by is not None and await self._same_user(stored.created_by, approver):
            raise SelfApproval(
                "the two-person rule: an alert must be approved by someone other than its issuer"
            )
        alert = stored.alert
        deliveries = self._planner.plan(alert, stored.channels)
        at = self._now()
        audit = _entry(at, approver, "alert.approve", stored, text, deliveries=len(deliveries))
        stops = alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL)
        keys = [reference_parts(ref) for ref in alert.references] if stops else []
        self._fence.hold(keys)
        try:
            approved = await self._store.approve_alert(
                alert_id,
                deliveries,
                delivery_priority(alert),
                by=approver.name,
                reason=text,
                at=at,
                audit=audit,
            )
        except BaseException:
            self._fence.settle(keys, stopped=False)
            raise
        self._fence.settle(keys, stopped=approved is not None)
        if approved is None:
            raise NotPending(f"alert {alert_id} was decided meanwhile")
        log.info("alert %s approved by %s", alert_id, approver.name)
        self._on_planned()
        self._on_published()
        return approved

    async def reject(self, alert_id: str, actor: Principal, reason: object) -> StoredAlert:
        text = clean_reason(reason)
        stored = await self._pending(alert_id)
        at = self._now()
        rejected = await self._store.reject_alert(
            alert_id,
            AlertState.REJECTED,
            by=actor.name,
            reason=text,
            at=at,
            audit=_entry(at, actor, "alert.reject", stored, text),
        )
        if rejected is None:
            raise NotPending(f"alert {alert_id} was decided meanwhile")
        log.info("alert %s rejected by %s", alert_id, actor.name)
        return rejected

    async def expire_pending(self, now: datetime | None = None) -> int:
        """Move every alert pending longer than the expiry to `expired_unapproved`; returns
        how many moved."""
        at = now or self._now()
        cutoff = at - self._pending_expiry
        moved = 0
        while True:
            batch = await self._store.pending_alerts(cutoff, 100)
            for stored in batch:
                done = await self._store.reject_alert(
                    stored.id,
                    AlertState.EXPIRED_UNAPPROVED,
                    by="system",
                    reason=EXPIRY_REASON,
                    at=at,
                    audit=_entry(at, "system", "alert.expire_unapproved", stored, EXPIRY_REASON),
                )
                if done is not None:
                    moved += 1
                    log.warning("alert %s expired unapproved", stored.id)
            if len(batch) < 100:
                return moved

    async def run_expiry(self, interval: float) -> None:
        """Expire unapproved alerts every `interval` seconds until cancelled."""
        while True:
            try:
                await self.expire_pending()
            except StoreError as exc:
                log.warning("could not expire unapproved alerts: %s", exc)
            await asyncio.sleep(interval)


def _entry(
    at: datetime,
    actor: Principal | str,
    action: str,
    stored: StoredAlert,
    reason: str,
    **extra: Any,
) -> AuditEntry:
    name, identity = actor_detail(actor)
    detail = {
        "alert_id": stored.id,
        "reason": reason,
        "severity": stored.alert.severity.value,
        "status": stored.alert.status.value,
        "issued_by": stored.created_by,
        **extra,
        **identity,
    }
    return AuditEntry(at=at, actor=name, action=action, detail=detail)
