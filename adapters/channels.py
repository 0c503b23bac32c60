"""Delivery channels from configuration: the one place that knows which adapters exist.

`open_channels(settings)` is an async context manager yielding the configured channels by
name, sharing one aiohttp session which it closes on exit (after the dispatcher stopped).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from adapters.webhook import WebhookChannel
from broadcaster.config import Settings
from broadcaster.ports import Channel, ChannelLimits


@contextlib.asynccontextmanager
async def open_channels(settings: Settings) -> AsyncIterator[dict[str, Channel]]:
    channels: dict[str, Channel] = {}
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
        yield channels
