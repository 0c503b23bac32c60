"""The Facebook Page channel through the real engine and aiohttp against the loopback Graph
simulator: the post and its fields, corrections as new posts, rate limits retried, errors
mapped, and the page token kept out of errors and logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from adapters.channels import open_channels
from adapters.facebook import FacebookChannel
from adapters.simulators.facebook import PAGE_ID, PAGE_TOKEN, FacebookSimulator
from adapters.store import open_store
from alerts.models import Status
from alerts.render import STATUS_MARKERS
from alerts.requests import AlertRequest
from broadcaster.config import FacebookSettings, load_settings
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.ports import AlertState, ClaimedDelivery, DeliveryRecord, Outbound, StoredAlert
from broadcaster.service import Service
from tests.integration.engine import engine, submit, until_outbox_empty
from tests.support.broker import free_port

PUBLIC_URL = "https://alerts.example.org"
SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
WRONG_TOKEN = "EAAwrongTokenThatMustNeverLeak987654"


def settings_for(
    simulator_url: str, token: str = PAGE_TOKEN, *, exercises: bool = False
) -> FacebookSettings:
    return FacebookSettings(
        page_id=PAGE_ID,
        page_token=SecretStr(token),
        api_base=simulator_url,
        rate_per_second=10,
        exercises=exercises,
    )


def stored_alert(alert_id: str = "a1", **fields: object) -> StoredAlert:
    base: dict[str, object] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "urgency": "Immediate",
    }
    alert = AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier=alert_id, sender="desk@example.org", sent=SENT
    )
    return StoredAlert(
        seq=1,
        id=alert_id,
        alert=alert,
        channels=("facebook",),
        source="json",
        state=AlertState.ACCEPTED,
        created_by=None,
        idempotency_key=None,
        body_hash="0" * 64,
        cap_xml=None,
        received_at=SENT,
    )


def outbound(stored: StoredAlert | None = None, recipient: str = PAGE_ID) -> Outbound:
    stored = stored or stored_alert()
    delivery = ClaimedDelivery(
        id=1,
        alert_id=stored.id,
        channel="facebook",
        recipient=recipient,
        priority=0,
        attempts=1,
        created_at=SENT,
        expires_at=None,
    )
    return Outbound(delivery=delivery, alert=stored, sender="default")


async def rows(service: Service, alert_id: str) -> list[DeliveryRecord]:
    found = await service.store.list_deliveries(alert_id, limit=10)
    return [r for r in found if r.channel == "facebook"]


@pytest.fixture
async def simulator() -> AsyncIterator[FacebookSimulator]:
    async with FacebookSimulator() as instance:
        yield instance


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_alert_is_posted_once_with_message_link_and_token(
    tmp_path: Path, simulator: FacebookSimulator, session: aiohttp.ClientSession
) -> None:
    """One alert is one post: headline, instruction, description, link; the token only as
    access_token; the post id is the delivery's provider_ref."""
    channel = FacebookChannel(settings_for(simulator.url), session, public_url=PUBLIC_URL)
    async with engine(tmp_path, channel) as service:
        alert = await submit(
            service, instruction="Stay indoors", description="A gas main broke at noon."
        )
        service.start_dispatcher()
        await until_outbox_empty(service)
        [row] = await rows(service, alert.id)
    [post] = simulator.posts
    assert (row.state.value, row.attempts, row.provider_ref) == ("sent", 1, post["id"])
    assert post["id"].startswith(f"{PAGE_ID}_")
    assert set(post["fields"]) == {"message"}
    lines = post["message"].splitlines()
    assert lines == [
        "Avoid Market St",
        "Severe — Gas leak",
        "What to do: Stay indoors",
        "A gas main broke at noon.",
        f"More info: {PUBLIC_URL}/alerts/{alert.id}",
    ]


async def test_update_and_cancel_are_new_posts_with_their_prefix(
    tmp_path: Path, simulator: FacebookSimulator, session: aiohttp.ClientSession
) -> None:
    """An Update and a Cancel each become a new post starting UPDATE: / CANCELLED:; an
    Exercise starts with its marker (on a Page configured for exercises)."""
    channel = FacebookChannel(settings_for(simulator.url, exercises=True), session, public_url=None)
    async with engine(tmp_path, channel) as service:
        alert = await submit(service, status="Exercise")
        service.start_dispatcher()
        await until_outbox_empty(service)
        update = await submit(
            service, status="Exercise", msg_type="Update", references=[alert.id], headline="Moved"
        )
        await until_outbox_empty(service)
        await submit(
            service, status="Exercise", msg_type="Cancel", references=[update.id], headline="Over"
        )
        await until_outbox_empty(service)
    marker = STATUS_MARKERS[Status.EXERCISE]
    assert [p["message"].splitlines()[:2] for p in simulator.posts] == [
        [marker, "Avoid Market St"],
        [marker, "UPDATE: Moved"],
        [marker, "CANCELLED: Over"],
    ]
    assert all("More info" not in p["message"] for p in simulator.posts)


async def test_rate_limit_is_retried_then_posted(
    tmp_path: Path, simulator: FacebookSimulator, session: aiohttp.ClientSession
) -> None:
    """A code 32 throttle is transient: the delivery is retried after the wait and posted."""
    channel = FacebookChannel(
        settings_for(simulator.url), session, public_url=PUBLIC_URL, rate_limit_retry_seconds=0.3
    )
    simulator.fail_next(1, code=32)
    async with engine(tmp_path, channel, backoff_base_seconds=0.05) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until_outbox_empty(service)
        [row] = await rows(service, alert.id)
    assert (row.state.value, row.attempts) == ("sent", 2)
    assert "Graph error 32" in (row.last_error or "")
    assert simulator.counts["rate_limited"] == 1
    assert len(simulator.posts) == 1


async def test_invalid_token_fails_permanently_and_never_leaks(
    tmp_path: Path,
    simulator: FacebookSimulator,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong token fails the delivery at once with code 190 in last_error; the token (which
    Graph quotes back) is in neither last_error, the logs nor the channel's repr."""
    caplog.set_level(logging.DEBUG)
    channel = FacebookChannel(
        settings_for(simulator.url, token=WRONG_TOKEN), session, public_url=PUBLIC_URL
    )
    assert WRONG_TOKEN not in repr(channel)
    async with engine(tmp_path, channel) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until_outbox_empty(service)
        [row] = await rows(service, alert.id)
    assert (row.state.value, row.attempts) == ("failed", 1)
    error = row.last_error or ""
    assert error.startswith("permanent:")
    assert "Graph error 190" in error
    assert "[redacted]" in error
    assert WRONG_TOKEN not in error
    assert WRONG_TOKEN not in caplog.text
    assert simulator.counts["unauthorized"] == 1
    assert simulator.posts == []


@pytest.mark.parametrize("status", [400, 429])
async def test_page_window_throttle_gives_retry_after_from_usage_headers(
    session: aiohttp.ClientSession, status: int
) -> None:
    """Past the Page's window Graph answers code 32; retry_after is the usage headers'
    estimated_time_to_regain_access in seconds."""
    async with FacebookSimulator(
        post_limit=1, window_seconds=120, rate_limit_status=status
    ) as limited:
        channel = FacebookChannel(settings_for(limited.url), session, public_url=None)
        await channel.send(outbound(stored_alert("a1")))
        with pytest.raises(TransientDeliveryError) as caught:
            await channel.send(outbound(stored_alert("a2", headline="Second")))
    assert caught.value.retry_after == 120
    assert f"HTTP {status}: Graph error 32" in str(caught.value)


async def test_server_errors_are_transient_and_other_errors_permanent(
    simulator: FacebookSimulator, session: aiohttp.ClientSession
) -> None:
    """Code 2 / HTTP 503 is transient without a hint; 100, 200, 368 and 506 are permanent."""
    channel = FacebookChannel(settings_for(simulator.url), session, public_url=None)
    simulator.fail_next(1, code=2)
    with pytest.raises(TransientDeliveryError) as transient:
        await channel.send(outbound())
    assert transient.value.retry_after is None
    assert "HTTP 503" in str(transient.value)
    for code in (100, 200, 368):
        simulator.fail_next(1, code=code)
        with pytest.raises(PermanentDeliveryError) as permanent:
            await channel.send(outbound())
        assert permanent.value.code == f"graph_{code}"
    await channel.send(outbound())
    with pytest.raises(PermanentDeliveryError) as duplicate:
        await channel.send(outbound())
    assert duplicate.value.code == "graph_506"
    assert len(simulator.posts) == 1


async def test_unreachable_graph_is_transient_and_unknown_page_permanent(
    session: aiohttp.ClientSession,
) -> None:
    """Nothing listening is a transient error naming only the error class; a delivery for
    another Page fails permanently without a request."""
    channel = FacebookChannel(
        settings_for(f"http://127.0.0.1:{free_port()}"), session, public_url=None
    )
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(outbound())
    assert str(caught.value) == "facebook: ClientConnectorError"
    with pytest.raises(PermanentDeliveryError) as unknown:
        await channel.send(outbound(recipient="999"))
    assert unknown.value.code == "unknown_page"


async def test_open_channels_builds_facebook_and_mqtt_only_when_configured(
    tmp_path: Path,
) -> None:
    """open_channels adds "facebook" with page_id and token, and "mqtt" with an MQTT url
    unless publish_alerts is false."""
    database = {"url": f"sqlite:///{tmp_path / 'c.db'}"}
    store = await open_store(database["url"])
    try:
        facebook = {"page_id": PAGE_ID, "page_token": PAGE_TOKEN}
        mqtt = {"url": "mqtt://user:pw@127.0.0.1:1"}
        cases = [
            ({}, set()),
            ({"channels": {"facebook": facebook}, "mqtt": mqtt}, {"facebook", "mqtt"}),
            ({"mqtt": {**mqtt, "publish_alerts": False}}, set()),
        ]
        for overrides, expected in cases:
            settings = load_settings(None, database=database, **overrides)
            async with open_channels(settings, store) as channels:
                assert set(channels) == expected
                if "mqtt" in channels:
                    assert "pw" not in repr(channels["mqtt"])
    finally:
        await store.close()
