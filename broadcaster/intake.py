"""Intake: turn a submitted payload (our JSON or CAP 1.2 XML) into stored alerts.

Contract:
- `submit` returns only after every alert in the payload has committed (or was already stored);
  callers acknowledge (HTTP 201/200, MQTT PUBACK) only after it returns.
- A payload is refused as a whole with an `IntakeError` subclass before anything is stored.
- An accepted alert is stored together with its planned deliveries (one transaction); an
  Update/Cancel also stops the alerts it references in that transaction, and the cancel
  fence keeps this process from starting any send of them once it commits.
- Repeats are answered with the first result (`created=False`): by `Idempotency-Key` (scoped to
  the caller), by CAP sender+identifier+sent, and over MQTT by the payload's hash, because a
  broker redelivers what a crash left unacknowledged.
- Every newly stored alert is audited as `alert.create` (id, severity, status, msg_type,
  state, source, format; the token as actor, or "mqtt") in its own transaction: no stored
  alert lacks its audit row, and a repeat writes none. A submission's `also_audit` adds one
  more row to that transaction, after `alert.create` (the one-step cancel's `alert.cancel`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import ValidationError

from alerts.cap import CapError, parse_cap
from alerts.models import Alert, MsgType, Scope, Severity, reference_parts
from alerts.requests import AlertRequest
from broadcaster.audit import AuditEntry
from broadcaster.errors import IdempotencyConflict, MalformedPayload, PayloadError, StoreError
from broadcaster.fence import CancelFence
from broadcaster.metrics import Metrics
from broadcaster.planner import LIVE_STATUSES, Planner, delivery_priority
from broadcaster.ports import AlertState, InsertResult, NewAlert, Store

log = logging.getLogger(__name__)


class RandomIds:
    """Random ids in `uuid.uuid4().hex`'s form (32 hex digits, version 4, RFC 4122 variant),
    equally unguessable: from `os.urandom`, read 4 KiB at a time. Each `os.urandom` call
    lets go of the GIL, and on a busy service getting it back waits on the SQLite writer
    thread: one call per id (two per JSON alert) cost ~7 % of the MQTT intake loop."""

    _BATCH = 256

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0
        self._lock = threading.Lock()  # CLI commands may call from other threads
        # A forked child must not hand out the ids left in its parent's pool.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._offset = b"", 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self._offset >= len(self._pool):
                self._pool, self._offset = os.urandom(16 * self._BATCH), 0
            raw = bytearray(self._pool[self._offset : self._offset + 16])
            self._offset += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        return raw.hex()


new_id = RandomIds().next


class PayloadFormat(StrEnum):
    JSON = "json"
    CAP = "cap"


@dataclass(frozen=True, slots=True)
class Submission:
    """Who sent what, how. `idempotency_key` is the caller's raw key (not yet scoped)."""

    body: bytes
    format: PayloadFormat
    source: str
    actor: str | None = None
    idempotency_key: str | None = None
    # The token's name for the audit log (`actor` is its id); MQTT has none.
    actor_name: str | None = None
    # Filled from this pre-approved template with these values (POST .../from-template).
    template: str | None = None
    template_values: tuple[tuple[str, str], ...] = ()
    # Another audit row for each alert this creates, built from the new alert's id and
    # received time, and written in its transaction after `alert.create`: an action whose
    # record names the alert (the one-step cancel) then commits with it or not at all.
    also_audit: Callable[[str, datetime], AuditEntry] | None = None


def sniff_format(body: bytes) -> PayloadFormat:
    """Guess the format of a payload without a content type (MQTT): XML starts with `<`."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return PayloadFormat.CAP if head.startswith(b"<") else PayloadFormat.JSON


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each failing field, e.g. `areas.0.polygon: polygon must be closed`."""
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class IntakeService:
    """Validates, de-duplicates and durably stores alerts."""

    def __init__(
        self,
        store: Store,
        *,
        sender: str,
        two_person_severities: frozenset[Severity],
        metrics: Metrics,
        two_person_scopes: frozenset[Scope] = frozenset(),
        planner: Planner | None = None,
        fence: CancelFence | None = None,
        on_planned: Callable[[], None] = lambda: None,
        on_stored: Callable[[], None] = lambda: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._planner = planner or Planner({})
        self._fence = fence or CancelFence()
        self._on_planned = on_planned
        self._on_stored = on_stored
        self._sender = sender
        self._two_person = two_person_severities
        self._two_person_scopes = two_person_scopes
        self._metrics = metrics
        self._now = now

    async def submit(self, submission: Submission) -> list[InsertResult]:
        started = time.perf_counter()
        try:
            alerts, channels = await self._parse(submission)
        except PayloadError:
            self._metrics.alerts_received.labels(
                submission.source, submission.format.value, "rejected"
            ).inc()
            raise
        body_hash = hashlib.sha256(submission.body).hexdigest()
        received_at = self._now()
        results = []
        for index, alert in enumerate(alerts):
            key = self._scoped_key(submission, body_hash, index, len(alerts))
            state = self._initial_state(alert)
            accepted = state is AlertState.ACCEPTED
            alert_id = new_id()
            new = NewAlert(
                id=alert_id,
                alert=alert,
                channels=channels,
                source=submission.source,
                state=state,
                created_by=submission.actor,
                idempotency_key=key,
                body_hash=body_hash,
                cap_xml=submission.body.decode()
                if submission.format is PayloadFormat.CAP
                else None,
                received_at=received_at,
                deliveries=self._planner.plan(alert, channels) if accepted else (),
                priority=delivery_priority(alert),
                template=submission.template,
                template_values=submission.template_values,
                audit=_audit_entries(submission, alert_id, alert, state, received_at),
            )
            try:
                result = await self._insert(new)
            except StoreError:
                self._metrics.alerts_received.labels(
                    submission.source, submission.format.value, "error"
                ).inc()
                raise
            stored = result.alert
            if (
                not result.created
                and key is not None
                and stored.idempotency_key == key
                and stored.body_hash != body_hash
            ):
                raise IdempotencyConflict(
                    "this Idempotency-Key was used before with a different body"
                )
            outcome = "created" if result.created else "duplicate"
            self._metrics.alerts_received.labels(
                submission.source, submission.format.value, outcome
            ).inc()
            results.append(result)
        self._metrics.intake_seconds.labels(submission.source).observe(
            time.perf_counter() - started
        )
        return results

    async def _insert(self, new: NewAlert) -> InsertResult:
        """Insert, holding the cancel fence over the alerts an Update/Cancel stops."""
        stops = new.state is AlertState.ACCEPTED and new.alert.msg_type in (
            MsgType.UPDATE,
            MsgType.CANCEL,
        )
        keys = [reference_parts(ref) for ref in new.alert.references] if stops else []
        self._fence.hold(keys)
        try:
            result = await self._store.insert_alert(new)
        except BaseException:
            self._fence.settle(keys, stopped=False)
            raise
        # A repeat of an Update/Cancel already stored (and so already applied) stops too.
        self._fence.settle(keys, stopped=result.alert.state is AlertState.ACCEPTED)
        if result.created and (new.deliveries or keys):
            self._on_planned()
        if result.created:
            self._on_stored()
        return result

    async def _parse(self, submission: Submission) -> tuple[list[Alert], tuple[str, ...]]:
        if submission.format is PayloadFormat.CAP:
            try:
                return parse_cap(submission.body), ()
            except CapError as exc:
                raise PayloadError(str(exc), code="invalid_cap") from exc
        try:
            request = AlertRequest.model_validate_json(submission.body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise MalformedPayload(describe_validation_error(exc)) from exc
            raise PayloadError(describe_validation_error(exc)) from exc
        channels = tuple(dict.fromkeys(request.channels))
        self._planner.check_requested(channels)
        references = await self._resolve_references(
            request.references, live=request.status in LIVE_STATUSES
        )
        try:
            alert = request.to_alert(
                identifier=new_id(),
                sender=self._sender,
                sent=self._now().replace(microsecond=0),
                references=references,
            )
        except ValidationError as exc:
            raise PayloadError(describe_validation_error(exc)) from exc
        return [alert], channels

    async def _resolve_references(
        self, references: list[str], *, live: bool = True
    ) -> tuple[str, ...]:
        """Our alert ids become CAP `sender,identifier,sent`; CAP triples pass through. An
        exercise or test may not update or cancel a live alert: its correction would go to
        everyone the live alert reached."""
        resolved = []
        for index, ref in enumerate(references):
            if "," in ref:
                resolved.append(ref)
                continue
            stored = await self._store.get_alert(ref)
            if stored is None:
                raise PayloadError(f"references.{index}: no alert with id {ref!r}")
            if not live and stored.alert.status in LIVE_STATUSES:
                raise PayloadError(
                    f"references.{index}: an exercise or test cannot update or cancel the "
                    f"live alert {ref!r}",
                    code="live_reference",
                )
            resolved.append(stored.alert.reference_key)
        return tuple(resolved)

    def _initial_state(self, alert: Alert) -> AlertState:
        """Held for a second person when its severity or scope says so; a Cancel never is:
        stopping an alert (a false alarm above all) must not wait for anyone."""
        if alert.msg_type is MsgType.CANCEL:
            return AlertState.ACCEPTED
        if alert.severity in self._two_person or alert.scope in self._two_person_scopes:
            return AlertState.PENDING_APPROVAL
        return AlertState.ACCEPTED

    @staticmethod
    def _scoped_key(submission: Submission, body_hash: str, index: int, count: int) -> str | None:
        if submission.idempotency_key is not None:
            key = f"{submission.actor or '-'}:{submission.idempotency_key}"
        elif submission.source == "mqtt" and submission.format is PayloadFormat.JSON:
            key = f"mqtt:{body_hash}"
        else:
            return None
        return key if count == 1 else f"{key}#{index}"


def _audit_entries(
    submission: Submission,
    alert_id: str,
    alert: Alert,
    state: AlertState,
    received_at: datetime,
) -> tuple[AuditEntry, ...]:
    """What the alert's own transaction appends to the audit log, in order."""
    created = _created_entry(submission, alert_id, alert, state)
    if submission.also_audit is None:
        return (created,)
    return created, submission.also_audit(alert_id, received_at)


def _created_entry(
    submission: Submission, alert_id: str, alert: Alert, state: AlertState
) -> AuditEntry:
    """`alert.create` for the audit log, written in the alert's own transaction (only when
    it is created): the token's name as actor (its id in `token_id`), else "system" or the
    source ("mqtt")."""
    actor = submission.actor_name or ("system" if submission.actor else submission.source)
    detail = {
        "id": alert_id,
        "severity": alert.severity.value,
        "status": alert.status.value,
        "msg_type": alert.msg_type.value,
        "state": state.value,
        "source": submission.source,
        "format": submission.format.value,
    }
    if submission.actor:
        detail["token_id"] = submission.actor
    if submission.template:
        detail["template"] = submission.template
    return AuditEntry(at=datetime.now(UTC), actor=actor, action="alert.create", detail=detail)
