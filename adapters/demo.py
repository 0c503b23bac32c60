"""`broadcaster demo`: the service on SQLite with the Twilio, X and Facebook simulators in the
same process and about 1,000 demo subscribers around Manchester city centre, so an alert with
an area visibly fans out by SMS, X and Facebook (to the simulators, never the real services),
and simulated residents answer it by SMS and on X (`demo_public`), so replies reach the
responder desk, triaged.

Each simulator listens where the demo config's `api_base` for its channel says, and only when
that channel is configured. Twilio's status callbacks reach `http.public_url`, so receipts move
deliveries to `delivered` as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from urllib.parse import urlsplit

from adapters.demo_public import DemoPublic
from adapters.server import serve
from adapters.simulators.facebook import FacebookSimulator
from adapters.simulators.twilio import TwilioSimulator
from adapters.simulators.x import DEFAULT_USER, XSimulator
from adapters.store import open_store
from broadcaster.config import Settings
from broadcaster.ports import Subscriber

log = logging.getLogger(__name__)

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
    async with contextlib.AsyncExitStack() as simulators:
        twilio: TwilioSimulator | None = None
        x_simulator: XSimulator | None = None
        sms = settings.channels.sms
        if sms.account_sid and sms.auth_token is not None:
            twilio = await simulators.enter_async_context(
                TwilioSimulator(
                    account_sid=sms.account_sid,
                    auth_token=sms.auth_token.get_secret_value(),
                    port=urlsplit(sms.api_base).port or 0,
                    callback_delay=1.0,
                )
            )
        x = settings.channels.x
        if x.consumer_key:
            x_simulator = await simulators.enter_async_context(
                # The demo reads mentions every 2 s: X's 180 per 15 minutes would run out.
                XSimulator(port=urlsplit(x.api_base).port or 0, mentions_limit=100_000)
            )
        facebook = settings.channels.facebook
        if facebook.page_id and facebook.page_token is not None:
            await simulators.enter_async_context(
                FacebookSimulator(
                    page_id=facebook.page_id,
                    page_token=facebook.page_token.get_secret_value(),
                    port=urlsplit(facebook.api_base).port or 0,
                )
            )
        public = DemoPublic(
            hook_url=f"{settings.http.base_url}/hooks/twilio/sms",
            twilio=twilio,
            # Mentions are only read when the config names our X user (the simulator's).
            x=x_simulator if x.user_id == DEFAULT_USER["id"] else None,
        )
        if x_simulator is not None and x.user_id != DEFAULT_USER["id"]:
            log.warning(
                "the demo's X users do not answer: this demo folder's config predates it "
                '(set [channels.x] user_id = "%s", or start with a new --dir)',
                DEFAULT_USER["id"],
            )
        answering = asyncio.create_task(public.run(), name="demo-public")
        try:
            await serve(settings)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
