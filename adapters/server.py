"""`broadcaster serve`: open the store, build the service, run HTTP (and MQTT when configured)
until SIGTERM/SIGINT, then stop in order: stop taking work, finish what is in flight, close."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.http.app import create_app
from adapters.mqtt import MqttIntake
from adapters.store import open_store
from broadcaster.config import Settings
from broadcaster.service import Service

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[tuple[Service, str]]:
    """The whole service, started; yields it and the base URL it listens on."""
    store = await open_store(settings.database.url)
    service = Service.build(settings, store)
    if settings.mqtt.url:
        mqtt = MqttIntake(settings.mqtt, service, max_payload_bytes=settings.http.max_body_bytes)
        service.add_task(mqtt.run(), name="mqtt-intake")
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


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(settings) as (_service, url):
        # Start-up objects never die: keep them out of every collection, and collect the
        # young generation less often, which shortens the pauses that make the latency tail.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        print(f"broadcaster listening on {url}", flush=True)
        await stop.wait()
        log.info("stopping")
