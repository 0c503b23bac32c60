"""The SMS channel through the real engine and the real twilio client, against the loopback
Twilio simulator: per-sender limits, languages, opt-outs, and corrections."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import shapely

from adapters.simulators.twilio import TwilioSimulator
from adapters.sms import SmsChannel
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import SmsSettings
from broadcaster.ports import Subscriber
from tests.integration.engine import counts, engine, submit, until, until_outbox_empty
from tests.support.recording_channel import max_in_window

SENDERS = ["+15005550001", "+15005550002", "+15005550003"]
CENTRE = {"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}


def people(count: int) -> list[Subscriber]:
    """`count` subscribers in central Manchester; every third reads Welsh."""
    return [
        Subscriber(
            phone=f"+4479111{i:05d}",
            lat=53.48 + (i % 7) * 0.001,
            lon=-2.24 + (i % 11) * 0.001,
            language="cy" if i % 3 == 0 else "en-GB",
        )
        for i in range(count)
    ]


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(mps=10) as simulator:
        yield simulator


def channel_for(simulator: TwilioSimulator, directory: SubscriberDirectory) -> SmsChannel:
    settings = SmsSettings(
        account_sid=simulator.account_sid,
        auth_token=simulator.auth_token,
        from_numbers=SENDERS,
        api_base=simulator.url,
        rate_per_second=10,
        max_segments=2,
    )
    return SmsChannel(settings, directory, public_url=None)


async def test_three_senders_share_the_load_within_their_limits(
    tmp_path: Path, twilio: TwilioSimulator
) -> None:
    """300 subscribers, 3 numbers at 10 segments/s: no sender over 10 in any second, no 429,
    each subscriber once, in their own language."""
    directory = SubscriberDirectory(people(300))
    channel = channel_for(twilio, directory)
    async with engine(tmp_path, channel) as service:
        alert = await submit(
            service,
            areas=[CENTRE],
            translations=[{"language": "cy", "headline": "Osgowch Stryd y Farchnad"}],
        )
        service.start_dispatcher()
        await until(lambda: len(twilio.messages) == 300, 30, "300 messages")
        await until_outbox_empty(service)
        assert twilio.counts["rate_limited"] == 0
        for sender in SENDERS:
            times = sorted(m["at"] for m in twilio.messages if m["from"] == sender)
            assert 90 <= len(times) <= 110  # shared evenly
            assert max_in_window(times) <= 10
        assert sorted(m["to"] for m in twilio.messages) == sorted(p.phone for p in people(300))
        welsh = [m for m in twilio.messages if m["to"].endswith(("00000", "00003"))]
        assert all("Osgowch" in m["body"] for m in welsh)
        assert await counts(service, alert.id, "sms") == {"sent": 300}


async def test_an_opted_out_number_gets_nothing_further(
    tmp_path: Path, twilio: TwilioSimulator
) -> None:
    """Twilio 21610 fails that delivery for good and opts the number out of the next alert."""
    subscribers = people(5)
    opted = subscribers[2].phone
    directory = SubscriberDirectory(subscribers)
    recorded: list[str] = []

    async def remember(phone: str) -> None:
        recorded.append(phone)

    async with TwilioSimulator(opted_out=[opted]) as simulator:
        channel = channel_for(simulator, directory)
        channel._on_opt_out = remember  # the service wires this to the store
        async with engine(tmp_path, channel) as service:
            first = await submit(service, areas=[CENTRE])
            service.start_dispatcher()
            await until_outbox_empty(service)
            assert recorded == [opted]
            rows = await service.store.list_deliveries(first.id, limit=10)
            refused = [r for r in rows if r.recipient == opted]
            assert refused[0].state.value == "failed"
            assert "21610" in (refused[0].last_error or "")
            second = await submit(service, areas=[CENTRE], headline="Still avoid Market St")
            await until_outbox_empty(service)
            planned = await service.store.list_deliveries(second.id, limit=10)
            assert opted not in {r.recipient for r in planned}
            assert len(simulator.messages) == 8


async def test_cancel_texts_exactly_those_who_got_the_original(
    tmp_path: Path, twilio: TwilioSimulator
) -> None:
    """A Cancel mid fan-out goes by SMS to exactly the numbers that received the original."""
    directory = SubscriberDirectory(people(200))
    channel = channel_for(twilio, directory)
    async with engine(tmp_path, channel) as service:
        original = await submit(service, areas=[CENTRE])
        service.start_dispatcher()
        await until(lambda: len(twilio.messages) >= 40, 20, "40 messages")
        cancel = await submit(
            service, msg_type="Cancel", references=[original.id], headline="All clear"
        )
        await until_outbox_empty(service, 60)
        await asyncio.sleep(0.1)
        got_original = {m["to"] for m in twilio.messages if "All clear" not in m["body"]}
        got_cancel = [m["to"] for m in twilio.messages if "All clear" in m["body"]]
        assert sorted(got_cancel) == sorted(got_original)
        cancels = [m["body"] for m in twilio.messages if "All clear" in m["body"]]
        assert all(body.startswith("CANCELLED") for body in cancels)
        assert (await counts(service, cancel.id, "sms")) == {"sent": len(got_original)}


async def test_ten_thousand_subscribers_polygon_reaches_exactly_those_inside(
    tmp_path: Path,
) -> None:
    """10,000 subscribers, a polygon over ~30 %: exactly those inside get it, once each,
    in their language."""
    rng = random.Random(5)
    crowd = [
        Subscriber(
            phone=f"+4479112{i:05d}",
            lat=53.40 + rng.random() * 0.15,
            lon=-2.40 + rng.random() * 0.30,
            language="cy" if i % 4 == 0 else "en-GB",
        )
        for i in range(10_000)
    ]
    ring = [(53.40, -2.40), (53.55, -2.40), (53.55, -2.31), (53.40, -2.31), (53.40, -2.40)]
    shape = shapely.Polygon([(lon, lat) for lat, lon in ring])
    inside = {s.phone for s in crowd if shape.intersects(shapely.Point(s.lon, s.lat))}
    welsh = {s.phone for s in crowd if s.language == "cy"}
    async with TwilioSimulator() as simulator:
        settings = SmsSettings(
            account_sid=simulator.account_sid,
            auth_token=simulator.auth_token,
            from_numbers=SENDERS,
            api_base=simulator.url,
            rate_per_second=1000,
        )
        channel = SmsChannel(settings, SubscriberDirectory(crowd), public_url=None)
        async with engine(tmp_path, channel) as service:
            await submit(
                service,
                areas=[{"description": "west", "polygon": [list(p) for p in ring]}],
                translations=[{"language": "cy", "headline": "Osgowch yr ardal"}],
            )
            service.start_dispatcher()
            await until_outbox_empty(service, 120)
        sent_to = [m["to"] for m in simulator.messages]
        assert len(sent_to) == len(set(sent_to)) == len(inside)
        assert set(sent_to) == inside
        assert 0.27 < len(inside) / 10_000 < 0.33
        for message in simulator.messages:
            assert ("Osgowch" in message["body"]) == (message["to"] in welsh)
