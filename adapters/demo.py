"""`broadcaster demo`: the service on SQLite with the Twilio simulator in the same process and
about 1,000 demo subscribers around Manchester city centre, so an alert with an area visibly
fans out by SMS (to the simulator, never to a real phone).

The simulator listens where the demo config's `channels.sms.api_base` says; its status
callbacks reach `http.public_url`, so receipts move deliveries to `delivered` as in production.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from urllib.parse import urlsplit

from adapters.server import serve
from adapters.simulators.twilio import TwilioSimulator
from adapters.store import open_store
from broadcaster.config import Settings
from broadcaster.ports import Subscriber

CITY_CENTRE = (53.4808, -2.2426)  # Manchester
DEMO_SUBSCRIBERS = 1000


def demo_subscribers(count: int = DEMO_SUBSCRIBERS, seed: int = 2011) -> list[Subscriber]:
    """Subscribers scattered within ~6 km of the centre; one in five reads Welsh."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    lat, lon = CITY_CENTRE
    return [
        Subscriber(
            phone=f"+4479111{i:05d}",
            lat=lat + rng.uniform(-0.05, 0.05),
            lon=lon + rng.uniform(-0.08, 0.08),
            language="cy" if i % 5 == 0 else "en-GB",
            groups=("businesses",) if i % 10 == 0 else ("residents",),
        )
        for i in range(count)
    ]


async def run_demo(settings: Settings) -> None:
    """Seed the demo subscribers (once), start the Twilio simulator, serve until stopped."""
    store = await open_store(settings.database.url)
    try:
        if not await store.list_subscribers(limit=1):
            await store.upsert_subscribers(demo_subscribers(), datetime.now(UTC))
    finally:
        await store.close()
    sms = settings.channels.sms
    if not sms.account_sid or sms.auth_token is None:
        await serve(settings)
        return
    port = urlsplit(sms.api_base).port or 0
    async with TwilioSimulator(
        account_sid=sms.account_sid,
        auth_token=sms.auth_token.get_secret_value(),
        port=port,
        callback_delay=1.0,
    ):
        await serve(settings)
