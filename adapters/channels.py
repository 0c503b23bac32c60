"""Delivery channels from configuration: the one place that knows which adapters exist.

`open_channels(settings, store)` is an async context manager yielding the configured
channels by name, sharing one aiohttp session which it closes on exit (after the dispatcher
stopped). SMS is on when `channels.sms.account_sid` is set; its audience is the store's active
subscribers, loaded here, and an opt-out or a refused number (flagged with Twilio's reason)
that Twilio reports is written back to the store. X is on when `channels.x.consumer_key` is
set; an Update/Cancel replies under the last post of the alert it stops. MQTT out ("mqtt") is
on when `mqtt.url` is set and `mqtt.publish_alerts` is true; an Update/Cancel clears the
retained area topics of the alerts it stops, found here through the store. Facebook is on
when `channels.facebook.page_id` (and its token) is set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp

from adapters.facebook import FacebookChannel
from adapters.mqtt_out import MqttOutChannel
from adapters.sms import SmsChannel
from adapters.webhook import WebhookChannel
from adapters.x import XChannel
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import Settings
from broadcaster.ports import Channel, ChannelLimits, Store, StoredAlert


@contextlib.asynccontextmanager
async def open_channels(settings: Settings, store: Store) -> AsyncIterator[dict[str, Channel]]:
    channels: dict[str, Channel] = {}
    x = settings.channels.x
    if x.consumer_key:

        async def thread_of(stored: StoredAlert) -> str | None:
            """The last post of the newest alert this one stops: replies go under it."""
            for old in reversed(await store.superseded_by(stored.id)):
                rows = await store.list_deliveries(old, limit=1000)
                posts = [r.provider_ref for r in rows if r.channel == "x" and r.provider_ref]
                if posts:
                    return posts[-1]
            return None

        channels["x"] = XChannel(
            x,
            public_url=settings.http.public_url,
            thread_of=thread_of,
            window_limit=x.post_window_limit,
            window_seconds=x.post_window_seconds,
            mode=x.long_alerts,
        )
    sms = settings.channels.sms
    if sms.account_sid:
        directory = SubscriberDirectory()
        await directory.load(store)

        async def opted_out(phone: str) -> None:
            await store.set_opted_out(phone, datetime.now(UTC))

        async def flagged(phone: str, reason: str) -> None:
            await store.flag_subscriber(phone, reason, datetime.now(UTC))

        channels["sms"] = SmsChannel(
            sms,
            directory,
            public_url=settings.http.public_url,
            concurrency=settings.delivery.concurrency,
            on_opt_out=opted_out,
            on_flag=flagged,
        )
    # No connection cap beyond each channel's own concurrency.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        web = settings.channels.web
        if web.webhooks:
            limits = ChannelLimits(
                rate_per_second=web.webhook_rate_per_second,
                concurrency=settings.delivery.concurrency,
            )
            channels["webhook"] = WebhookChannel(web.webhooks, session, limits=limits)
        facebook = settings.channels.facebook
        if facebook.page_id and facebook.page_token:
            channels["facebook"] = FacebookChannel(
                facebook, session, public_url=settings.http.public_url
            )
        if settings.mqtt.url and settings.mqtt.publish_alerts:

            async def superseded(stored: StoredAlert) -> list[StoredAlert]:
                """The alerts this Update/Cancel stopped, oldest first."""
                found = [await store.get_alert(i) for i in await store.superseded_by(stored.id)]
                return [alert for alert in found if alert is not None]

            channels["mqtt"] = MqttOutChannel(
                settings.mqtt,
                base_url=settings.http.base_url,
                superseded=superseded,
                concurrency=settings.delivery.concurrency,
                timeout_seconds=min(10.0, settings.delivery.send_timeout_seconds),
            )
        try:
            yield channels
        finally:
            # The dispatcher closes them when it stops; this covers a start that failed.
            # Closing twice is harmless.
            for channel in channels.values():
                await channel.close()
