"""The running service: the core's parts wired together, and its lifecycle.

Adapters (HTTP, MQTT) hold a `Service` and call into it; background loops register with
`add_task` so that `stop()` can end them in order: stop taking work first, then wait for what is
in flight, then close the store. Readiness checks are plain async callables so each adapter can
report on itself without the core knowing which adapters exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from broadcaster.approval import ApprovalDesk
from broadcaster.auth import Authenticator, FailureLimiter
from broadcaster.clusters import Clusterer
from broadcaster.config import Settings
from broadcaster.dispatcher import Dispatcher, DispatchPolicy
from broadcaster.errors import StoreError
from broadcaster.fence import CancelFence
from broadcaster.intake import IntakeService
from broadcaster.metrics import Metrics
from broadcaster.planner import Planner
from broadcaster.ports import Channel, Store, StoredReply, Triage
from broadcaster.publication import Publication
from broadcaster.replies import ReplyService, classify_nothing
from broadcaster.reply_feed import ReplyFeed
from broadcaster.responders import ResponderDesk
from broadcaster.retention import run_retention
from broadcaster.sms_inbox import SmsInbox

log = logging.getLogger(__name__)

# A readiness check returns (ok, detail) for one dependency.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]
# The outbox gauges are refreshed this often (seconds), or less often when the query is slow:
# never more than a tenth of the time is spent on it. Scrapes read the last snapshot.
OUTBOX_GAUGE_SECONDS = 5.0


@dataclass
class Service:
    settings: Settings
    store: Store
    metrics: Metrics
    intake: IntakeService
    authenticator: Authenticator
    dispatcher: Dispatcher
    planner: Planner
    publication: Publication
    # Listening: replies from every source go through `replies`; inbound SMS through
    # `sms_inbox` (keywords first).
    replies: ReplyService
    sms_inbox: SmsInbox
    # Responders: the feed of reply events (streams) and what they do with replies.
    reply_feed: ReplyFeed
    desk: ResponderDesk
    # The two-person rule: approve / reject alerts held for approval, expire unapproved ones.
    approvals: ApprovalDesk
    # Called with every newly stored reply (the MQTT reply publisher listens here).
    reply_stored: list[Callable[[StoredReply], object]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Called after subscribers change (the SMS audience index reloads itself).
    subscribers_changed: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    # Called with (phone, opted_out) after an SMS STOP / START was stored.
    opt_changed: list[Callable[[str, bool], Awaitable[object]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        metrics: Metrics | None = None,
        channels: Mapping[str, Channel] | None = None,
        triage: Triage | None = None,
        clusterer: Clusterer | None = None,
    ) -> Service:
        """Wire the core. `channels` (by name) are the delivery channels the adapters built;
        the service closes them when the dispatcher stops. `triage` classifies replies (none:
        `classify_nothing`); `clusterer` groups near-duplicates (none: no clusters)."""
        metrics = metrics or Metrics()
        channels = dict(channels or {})
        fence = CancelFence()
        publication = Publication(store)
        planner = Planner(channels)
        dispatcher = Dispatcher(
            store,
            channels,
            policy=DispatchPolicy.from_settings(settings.delivery),
            metrics=metrics,
            fence=fence,
        )
        intake = IntakeService(
            store,
            sender=settings.alerts.sender,
            two_person_severities=frozenset(settings.approval.two_person_severities),
            two_person_scopes=frozenset(settings.approval.two_person_scopes),
            metrics=metrics,
            planner=planner,
            fence=fence,
            on_planned=dispatcher.wake,
            on_stored=publication.wake,
        )
        reply_feed = ReplyFeed(store)
        reply_stored: list[Callable[[StoredReply], object]] = [reply_feed.wake]

        def stored(reply: StoredReply) -> None:
            for listener in reply_stored:
                listener(reply)

        replies = ReplyService(
            store,
            triage or classify_nothing,
            metrics=metrics,
            on_stored=stored,
            clusterer=clusterer,
        )
        subscribers_changed: list[Callable[[], Awaitable[object]]] = []
        opt_changed: list[Callable[[str, bool], Awaitable[object]]] = []
        service = cls(
            settings=settings,
            store=store,
            metrics=metrics,
            intake=intake,
            authenticator=Authenticator(
                store,
                cache_seconds=settings.http.auth_cache_seconds,
                failures=FailureLimiter(settings.http.auth_failures_per_minute),
                on_failure=lambda reason: metrics.auth_failures.labels(reason).inc(),
            ),
            dispatcher=dispatcher,
            planner=planner,
            publication=publication,
            replies=replies,
            sms_inbox=SmsInbox(
                store,
                replies,
                opt_changed=opt_changed,
                subscribers_changed=subscribers_changed,
            ),
            subscribers_changed=subscribers_changed,
            opt_changed=opt_changed,
            reply_feed=reply_feed,
            desk=ResponderDesk(store, on_change=reply_feed.wake),
            approvals=ApprovalDesk(
                store,
                planner,
                fence,
                pending_expiry=timedelta(minutes=settings.approval.pending_expiry_minutes),
                on_planned=dispatcher.wake,
                on_published=publication.wake,
            ),
            reply_stored=reply_stored,
        )
        service.readiness["database"] = service._database_ready
        return service

    async def notify_subscribers_changed(self) -> None:
        for listener in self.subscribers_changed:
            await listener()

    def start_dispatcher(self) -> None:
        """Send the outbox in the background for the life of the service."""
        self.add_task(self.dispatcher.run(), name="dispatcher")

    async def start_publication(self) -> None:
        """Follow alert events (pages, feeds, SSE) for the life of the service."""
        await self.publication.start()
        self.add_task(self.publication.run(), name="publication")

    async def start_responders(self) -> None:
        """Follow reply events (responder streams) and purge old replies, for the life of
        the service."""
        await self.reply_feed.start()
        self.add_task(self.reply_feed.run(), name="reply-feed")
        retention = self.settings.replies
        self.add_task(
            run_retention(self.store, retention.retention_days, retention.purge_interval_seconds),
            name="reply-retention",
        )

    def start_approvals(self) -> None:
        """Expire alerts left unapproved, for the life of the service."""
        self.add_task(
            self.approvals.run_expiry(self.settings.approval.expiry_check_seconds),
            name="approval-expiry",
        )

    def start_outbox_gauges(self, interval: float | None = None) -> None:
        """Refresh the outbox depth and oldest-pending gauges in the background, every
        `interval` seconds (default `OUTBOX_GAUGE_SECONDS`)."""
        every = OUTBOX_GAUGE_SECONDS if interval is None else interval
        self.add_task(self._refresh_outbox_gauges(every), name="outbox-gauges")

    async def _refresh_outbox_gauges(self, interval: float) -> None:
        channels = list(self.dispatcher.runners)
        while True:
            started = time.perf_counter()
            try:
                rows = await self.store.outbox_depth()
            except StoreError as exc:
                log.warning("refreshing the outbox gauges failed: %s", exc)
            else:
                self.metrics.outbox.update(rows, channels)
            await asyncio.sleep(max(interval, 10 * (time.perf_counter() - started)))

    def require_schema(self, version: int) -> None:
        """Readiness also needs the database's schema at `version` (the newest migration
        this code knows): older means migrations have not run. Newer is reported but ready:
        a newer release migrated it during a rolling upgrade, and migrations only add."""

        async def check() -> tuple[bool, str]:
            try:
                current = await self.store.schema_version()
            except StoreError as exc:
                return False, str(exc)
            if current < version:
                return False, f"schema version {current}, this code needs {version}"
            if current > version:
                return True, f"schema version {current}, newer than this code's {version}"
            return True, f"schema version {current}"

        self.readiness["migrations"] = check

    def circuit_states(self) -> dict[str, str]:
        """Each channel's circuit breaker: closed, half_open or open."""
        return {name: breaker.state.value for name, breaker in self.dispatcher.breakers.items()}

    async def readiness_report(self) -> tuple[bool, dict[str, object]]:
        """`/readyz`: ready when every check passes (database, migrations, broker when
        configured). Channels' circuits are reported and mark the service `degraded`, but do
        not make it unready: intake still stores alerts durably, and taking this process out
        of service would not bring a provider back."""
        ready, checks = await self.check_ready()
        circuits = self.circuit_states()
        return ready, {
            "ready": ready,
            "degraded": any(state != "closed" for state in circuits.values()),
            "checks": checks,
            "channels": {name: {"circuit": state} for name, state in circuits.items()},
        }

    def add_task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background loop for the life of the service; a crash is logged, not lost."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._log_task_end)
        self._tasks.append(task)

    async def check_ready(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """Run every readiness check at once, each within 2 s."""

        async def run(check: ReadinessCheck) -> dict[str, object]:
            try:
                async with asyncio.timeout(2.0):  # not wait_for: see EventFollower.run
                    ok, text = await check()
            except TimeoutError:
                ok, text = False, "timed out"
            return {"ok": ok, "detail": text}

        names = list(self.readiness)
        results = await asyncio.gather(*(run(self.readiness[name]) for name in names))
        detail = dict(zip(names, results, strict=True))
        return all(d["ok"] for d in detail.values()), detail

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.store.close()

    async def _database_ready(self) -> tuple[bool, str]:
        try:
            await self.store.ping()
        except StoreError as exc:
            return False, str(exc)
        return True, "ok"

    @staticmethod
    def _log_task_end(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())
