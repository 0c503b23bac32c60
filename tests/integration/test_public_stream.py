"""The public event stream (`GET /v1/stream`) over a real loopback socket: live events,
resume with Last-Event-ID, keep-alives, clean-up and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import RunningService, start_service
from tests.support.public_web import SseReader, post_alert, until_published

KEEPALIVE = 0.3


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The whole service with a short keep-alive, so its comments arrive within a test."""
    async for running in start_service(
        tmp_path,
        http={"sse_keepalive_seconds": KEEPALIVE},
        approval={"two_person_severities": ["Extreme"]},
    ):
        yield running


def gauge(site: RunningService) -> float:
    return float(site.service.metrics.sse_clients._value.get())


async def until_gauge(site: RunningService, value: float, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while gauge(site) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"broadcaster_sse_clients is {gauge(site)}, not {value}")
        await asyncio.sleep(0.02)


async def open_stream(site: RunningService, **headers: str) -> aiohttp.ClientResponse:
    response = await site.http.get(f"{site.url}/v1/stream", headers=headers)
    assert response.status == 200  # headers arrive after the server subscribed this client
    return response


async def test_event_arrives_after_a_post(site: RunningService) -> None:
    """A stream opened before a POST receives that alert as an `alert` event with the public
    view; headers are those of an unbuffered event stream."""
    response = await open_stream(site)
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    await until_gauge(site, 1)
    body = await post_alert(site, "Streamed alert", web="https://x.example")
    event = await SseReader(response).next_event()
    response.close()
    assert event.event == "alert"
    assert event.id is not None
    assert int(event.id) > 0
    data = event.json()
    base = site.service.settings.http.base_url  # http.public_url, as every link we publish
    assert data == {
        "kind": "created",
        "id": body["id"],
        "msg_type": "Alert",
        "status": "Actual",
        "severity": "Severe",
        "urgency": "Immediate",
        "headline": "Streamed alert",
        "sent": data["sent"],
        "expires": None,
        "areas": ["Market St"],
        "links": {
            "page": f"{base}/alerts/{body['id']}",
            "cap": f"{base}/alerts/{body['id']}.cap",
        },
    }


async def test_stream_starts_from_now_and_skips_non_public(site: RunningService) -> None:
    """Without Last-Event-ID only later events arrive; drafts and pending alerts never do;
    updates and cancels arrive with their kind."""
    earlier = await post_alert(site, "Before the stream")
    await until_published(site, earlier["id"])
    response = await open_stream(site)
    await until_gauge(site, 1)
    await post_alert(site, "Draft", status="Draft")
    await post_alert(site, "Pending", severity="Extreme")
    update = await post_alert(site, "Update", msg_type="Update", references=[earlier["id"]])
    cancel = await post_alert(site, "Cancel", msg_type="Cancel", references=[update["id"]])
    reader = SseReader(response)
    first, second = await reader.next_event(), await reader.next_event()
    response.close()
    assert [(e.json()["id"], e.json()["kind"]) for e in (first, second)] == [
        (update["id"], "updated"),
        (cancel["id"], "cancelled"),
    ]


async def test_resume_with_last_event_id_yields_exactly_the_missed_events(
    site: RunningService,
) -> None:
    """Post 5, read 2, disconnect, post 3 more: resuming from the second id gives exactly the
    other 6, in order, and nothing else; the query parameter works like the header."""
    response = await open_stream(site)
    await until_gauge(site, 1)
    ids = [(await post_alert(site, f"Alert {n}"))["id"] for n in range(5)]
    reader = SseReader(response)
    seen = [await reader.next_event(), await reader.next_event()]
    response.close()
    assert [e.json()["id"] for e in seen] == ids[:2]
    ids += [(await post_alert(site, f"Alert {n}"))["id"] for n in range(5, 8)]
    await until_published(site, ids[-1])
    last_id = seen[-1].id
    assert last_id is not None
    for headers, query in (({"Last-Event-ID": last_id}, ""), ({}, f"?last_event_id={last_id}")):
        async with site.http.get(f"{site.url}/v1/stream{query}", headers=headers) as resumed:
            reader = SseReader(resumed)
            events = [await reader.next() for _ in range(6)]
            assert [e.json()["id"] for e in events] == ids[2:]
            ids_seen = [int(e.id or 0) for e in events]
            assert ids_seen == sorted(ids_seen)
            assert (await reader.next()).comment == "keep-alive"  # and no further event


async def test_bad_last_event_id_is_400(site: RunningService) -> None:
    """A Last-Event-ID that is not an event id is refused with a JSON 400."""
    async with site.http.get(f"{site.url}/v1/stream", headers={"Last-Event-ID": "x"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "bad_last_event_id"


async def test_keep_alive_comment_arrives(site: RunningService) -> None:
    """An idle stream carries a `: keep-alive` comment every keep-alive interval."""
    async with site.http.get(f"{site.url}/v1/stream") as response:
        started = time.monotonic()
        block = await SseReader(response).next(KEEPALIVE * 10)
        assert block.comment == "keep-alive"
        assert time.monotonic() - started >= KEEPALIVE * 0.5


async def test_disconnected_clients_are_cleaned_up(site: RunningService) -> None:
    """The broadcaster_sse_clients gauge counts open streams and drops departed ones."""
    responses = [await open_stream(site) for _ in range(3)]
    await until_gauge(site, 3)
    for response in responses:
        response.close()
    await until_gauge(site, 0, seconds=KEEPALIVE * 10)
    async with site.http.get(f"{site.url}/metrics") as metrics:
        assert "broadcaster_sse_clients 0.0" in await metrics.text()


async def test_shutdown_does_not_wait_for_open_streams(tmp_path: Path) -> None:
    """Stopping the service with streams open ends them at once instead of hanging."""
    running = start_service(tmp_path, http={"sse_keepalive_seconds": 60})
    site = await anext(running)
    streams = [await site.http.get(f"{site.url}/v1/stream") for _ in range(3)]
    await until_gauge(site, 3)
    started = time.monotonic()
    async with asyncio.timeout(10):
        await running.aclose()
    assert time.monotonic() - started < 5
    for stream in streams:
        stream.close()
