"""`broadcaster serve`: open the store, build the service, run HTTP (and MQTT when configured)
until SIGTERM/SIGINT, then stop in order: stop taking work, finish what is in flight, close."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from adapters.channels import open_channels
from adapters.http.app import create_app
from adapters.mqtt import MqttIntake
from adapters.mqtt_out import MqttOutChannel
from adapters.mqtt_replies import ReplyPublisher
from adapters.sms import SmsChannel
from adapters.store import open_store
from adapters.store.postgres import PostgresStore
from adapters.store.schema import LATEST_VERSION
from adapters.x import XChannel
from adapters.x_mentions import MentionsPoller
from broadcaster.audience import DirectoryFollower
from broadcaster.clusters import Clusterer
from broadcaster.config import Settings
from broadcaster.dispatcher import Dispatcher, DispatchPolicy
from broadcaster.fence import CancelFence
from broadcaster.metrics import Metrics
from broadcaster.ports import Channel, ReplySource, Store, Triage
from broadcaster.service import Service
from broadcaster.triage import Clusterer as TriageClusterer
from broadcaster.triage import classify

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    extra_channels: Mapping[str, Channel] | None = None,
    triage: Triage | None = None,
) -> AsyncIterator[tuple[Service, str]]:
    """The whole service, started; yields it and the base URL it listens on.
    `extra_channels` join the configured ones (tests add recording channels this way);
    `triage` replaces the installed classifier (`load_triage`)."""
    store = await open_store(settings.database.url)
    try:
        async with open_channels(settings, store) as channels:
            channels.update(extra_channels or {})
            async with _running(settings, store, channels, triage or load_triage()) as running:
                yield running
    finally:
        await store.close()  # idempotent: the service closed it already unless start failed


@contextlib.asynccontextmanager
async def _running(
    settings: Settings, store: Store, channels: Mapping[str, Channel], triage: Triage
) -> AsyncIterator[tuple[Service, str]]:
    service = Service.build(
        settings, store, channels=channels, triage=triage, clusterer=load_clusterer()
    )
    sms = channels.get("sms")
    if isinstance(sms, SmsChannel):
        service.desk.return_channels[ReplySource.SMS] = sms
    x_channel = channels.get("x")
    if isinstance(x_channel, XChannel):
        service.desk.return_channels[ReplySource.X] = x_channel
    if isinstance(sms, SmsChannel):
        # The new index lives until the next reload, as at start (serve): frozen out of GC.
        # (The stores freeze the subscriber records themselves as they decode them.)
        follower = DirectoryFollower(
            sms.directory,
            store,
            poll_seconds=settings.channels.sms.subscribers_poll_seconds,
            after_reload=freeze_survivors,
        )
        reload_subscribers = follower.reload
        service.subscribers_changed.append(reload_subscribers)
        service.add_task(follower.run(), name="subscriber-changes")
        directory = sms.directory

        async def opted(phone: str, opted_out: bool) -> None:
            if opted_out:
                directory.opt_out(phone)
            elif directory.language_of(phone) is not None:
                directory.opt_in(phone)  # still indexed: back at once
            else:
                await reload_subscribers()  # opted out before the last load

        service.opt_changed.append(opted)
    service.require_schema(LATEST_VERSION)
    connected = service.metrics.mqtt_connected
    mqtt_channel = channels.get("mqtt")
    if isinstance(mqtt_channel, MqttOutChannel):
        mqtt_channel.on_connection = connected.labels("publisher").set
    service.start_dispatcher()
    service.start_outbox_gauges()
    service.start_approvals()
    await service.start_publication()
    await service.start_responders()
    if isinstance(store, PostgresStore):  # other processes' events wake our followers at once
        service.add_task(store.follow_events(_event_waker(service)), name="event-notifications")
    if settings.mqtt.url:
        mqtt = MqttIntake(settings.mqtt, service, max_payload_bytes=settings.http.max_body_bytes)
        service.add_task(mqtt.run(), name="mqtt-intake")
        publisher = ReplyPublisher(settings.mqtt)
        publisher.on_connection = connected.labels("replies").set
        service.reply_stored.append(publisher.offer)
        service.add_task(publisher.run(), name="mqtt-replies")
    x = settings.channels.x
    if x.user_id and (x.bearer_token or x.consumer_key):
        poller = MentionsPoller(x, service.replies, store)
        service.add_task(poller.run(), name="x-mentions")
    runner = web.AppRunner(create_app(service), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port, backlog=1024)
    try:
        await site.start()
        sockets = runner.addresses
        port = sockets[0][1] if sockets else settings.http.port
        url = f"http://{settings.http.host}:{port}"
        log.info("listening on %s", url)
        yield service, url
    finally:
        await site.stop()  # stop accepting, let in-flight requests finish
        await runner.cleanup()
        await service.stop()


def _event_waker(service: Service) -> Callable[[str], None]:
    """What a PostgreSQL event notification wakes: the follower of that event table."""

    def wake(table: str) -> None:
        if table == "alert_events":
            service.publication.wake()
        elif table == "reply_events":
            service.reply_feed.wake()

    return wake


def load_triage() -> Triage:
    """The shipped classifier (`broadcaster.triage.classify`): its model loads once, here."""
    classify("warm-up")  # load the model at start, not on the first reply
    triage: Triage = classify
    return triage


def load_clusterer() -> Clusterer:
    """A fresh near-duplicate clusterer (`broadcaster.triage.Clusterer`)."""
    clusterer: Clusterer = TriageClusterer()
    return clusterer


def freeze_survivors() -> None:
    """Freeze what is alive now, after collecting the young generations: a freeze keeps
    whatever it moves for good, so the cycles dropped since the last collection must go
    first. Young only (a few ms): the older heap was frozen at start-up or a reload ago."""
    gc.collect(1)
    gc.freeze()


def tune_collector() -> None:
    """Call once start-up is done. Start-up objects (the subscriber index: a million for a
    city) never die: keep them out of every collection, and collect the young generation
    less often, which shortens the pauses that make the latency tail. Benchmarks call it too,
    so they measure what `serve` runs."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(settings) as (_service, url):
        tune_collector()
        print(f"broadcaster listening on {url}", flush=True)
        await stop.wait()
        log.info("stopping")


async def drain(settings: Settings) -> int:
    """`broadcaster drain`: send everything pending, then exit. Returns how many deliveries
    were still open at the start."""
    store = await open_store(settings.database.url)
    try:
        async with open_channels(settings, store) as channels:
            dispatcher = Dispatcher(
                store,
                channels,
                policy=DispatchPolicy.from_settings(settings.delivery),
                metrics=Metrics(),
                fence=CancelFence(),
            )
            open_count = await store.count_open_deliveries()
            await dispatcher.drain()
    finally:
        await store.close()
    return open_count
