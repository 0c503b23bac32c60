"""The webhook channel against a real loopback receiver (tests.support.recorder): signed
bodies, headers, and how each kind of answer maps to a receipt or a delivery error."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from adapters.webhook import WebhookChannel, parse_retry_after, sign, verify
from alerts.models import format_cap_time
from alerts.render import render_text
from alerts.requests import AlertRequest
from broadcaster.config import WebhookReceiver
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.ports import AlertState, ClaimedDelivery, Outbound, StoredAlert
from tests.integration.engine import engine, submit, until_outbox_empty
from tests.support.broker import free_port
from tests.support.recorder import Recorder

SECRET = "s3cr3t-webhook-key-do-not-leak"
SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def stored_alert(alert_id: str = "a1", **fields: object) -> StoredAlert:
    base: dict[str, object] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "urgency": "Immediate",
        "areas": [{"description": "Market St"}],
    }
    alert = AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier=alert_id, sender="desk@example.org", sent=SENT
    )
    return StoredAlert(
        seq=1,
        id=alert_id,
        alert=alert,
        channels=("webhook",),
        source="json",
        state=AlertState.ACCEPTED,
        created_by=None,
        idempotency_key=None,
        body_hash="0" * 64,
        cap_xml=None,
        received_at=SENT,
    )


def outbound(recipient: str, *, delivery_id: int = 41, attempts: int = 1) -> Outbound:
    stored = stored_alert()
    delivery = ClaimedDelivery(
        id=delivery_id,
        alert_id=stored.id,
        channel="webhook",
        recipient=recipient,
        priority=0,
        attempts=attempts,
        created_at=SENT,
        expires_at=None,
    )
    return Outbound(delivery=delivery, alert=stored, sender="default")


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder(secret=SECRET.encode(), retry_after=7) as instance:
        yield instance


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def make_channel(
    recorder: Recorder, session: aiohttp.ClientSession, *extra: str, timeout: float = 5.0
) -> WebhookChannel:
    urls = [f"{recorder.url}/a", f"{recorder.url}/b", *extra]
    receivers = [WebhookReceiver(url=u, secret=SecretStr(SECRET)) for u in urls]
    return WebhookChannel(receivers, session, timeout_seconds=timeout)


async def test_audience_lists_every_receiver_once_in_order(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """audience() is every configured URL in config order, a repeated URL once."""
    channel = make_channel(recorder, session, f"{recorder.url}/a")
    alert = stored_alert().alert
    assert channel.audience(alert) == [f"{recorder.url}/a", f"{recorder.url}/b"]
    assert channel.name == "webhook"
    assert channel.limits.concurrency == 32
    assert channel.cost(stored_alert(), f"{recorder.url}/a") == 1


async def test_send_posts_a_signed_body_with_headers(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A send reaches the receiver signed, with event/delivery headers and the full body."""
    channel = make_channel(recorder, session)
    message = outbound(f"{recorder.url}/b", delivery_id=41, attempts=2)
    receipt = await channel.send(message)

    assert receipt.provider_ref == "r1"
    assert recorder.counts["bad_signature"] == 0
    [got] = recorder.received
    assert got.path == "/b"
    assert got.delivery_id == "41"
    assert got.event == "alert.alert"
    body = json.loads(got.body)
    alert = message.alert.alert
    assert body == {
        "event": "alert.alert",
        "alert_id": "a1",
        "delivery_id": 41,
        "attempt": 2,
        "status": "Actual",
        "msg_type": "Alert",
        "severity": "Severe",
        "urgency": "Immediate",
        "sent": format_cap_time(SENT),
        "text": render_text(alert),
        "alert": alert.model_dump(mode="json"),
    }
    # Compact JSON, as json.dumps(separators=(",", ":")) writes it.
    assert b", " not in got.body.split(b',"text"')[0]


async def test_signature_header_matches_sign() -> None:
    """The signature header is sign(secret, timestamp, body) for the exact bytes sent."""
    async with Recorder() as plain:
        seen: list[tuple[str, str]] = []

        async def on_request(
            _: aiohttp.ClientSession,
            __: object,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            seen.append(
                (
                    params.headers["X-Broadcaster-Timestamp"],
                    params.headers["X-Broadcaster-Signature"],
                )
            )

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_request)
        async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
            receivers = [WebhookReceiver(url=f"{plain.url}/a", secret=SecretStr(SECRET))]
            channel = WebhookChannel(receivers, traced, wall=lambda: 1_800_000_000.5)
            await channel.send(outbound(f"{plain.url}/a"))
        [(timestamp, signature)] = seen
        assert timestamp == "1800000000"
        assert signature == sign(SECRET.encode(), 1_800_000_000, plain.received[0].body)
        assert signature.startswith("sha256=")


def test_verify_rejects_tampering_staleness_and_junk() -> None:
    """verify() accepts a fresh signature and rejects a tampered body, stale time or junk."""
    key = SECRET.encode()
    body = b'{"event":"alert.alert"}'
    now = 1_800_000_000.0
    good = sign(key, int(now), body)
    assert verify(key, str(int(now)), good, body, now=now)
    assert verify(key, str(int(now) - 299), sign(key, int(now) - 299, body), body, now=now)
    assert not verify(key, str(int(now)), good, body + b" ", now=now)
    assert not verify(b"other", str(int(now)), good, body, now=now)
    stale = int(now) - 301
    assert not verify(key, str(stale), sign(key, stale, body), body, now=now)
    future = int(now) + 301
    assert not verify(key, str(future), sign(key, future, body), body, now=now)
    assert not verify(key, "not-a-time", good, body, now=now)
    assert not verify(key, "1_800_000_000", good, body, now=now)
    assert not verify(key, str(int(now)), "sha256=é", body, now=now)


async def test_5xx_is_transient(recorder: Recorder, session: aiohttp.ClientSession) -> None:
    """A 503 answer raises TransientDeliveryError without a retry hint."""
    channel = make_channel(recorder, session)
    recorder.fail_next(1, 503)
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(outbound(f"{recorder.url}/a"))
    assert caught.value.retry_after is None
    assert "503" in str(caught.value)
    assert recorder.counts["failed_5xx"] == 1
    assert recorder.received == []


async def test_429_is_transient_with_retry_after(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A 429 with Retry-After: 7 raises TransientDeliveryError(retry_after=7)."""
    channel = make_channel(recorder, session)
    recorder.fail_next(1, 429)
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(outbound(f"{recorder.url}/a"))
    assert caught.value.retry_after == 7
    assert recorder.counts["rate_limited"] == 1


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After is read as delta-seconds or an HTTP-date; junk gives None."""
    now = SENT.timestamp()
    later = format_datetime(SENT + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(later, now=now) == 30
    assert parse_retry_after("Sun, 01 Jan 2000 00:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_404_is_permanent(recorder: Recorder, session: aiohttp.ClientSession) -> None:
    """A 404 raises PermanentDeliveryError with code http_404."""
    target = f"{recorder.url}/status/404"
    channel = make_channel(recorder, session, target)
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.send(outbound(target))
    assert caught.value.code == "http_404"


async def test_unknown_receiver_is_permanent(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A recipient no longer configured fails permanently and is never posted to."""
    channel = make_channel(recorder, session)
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.send(outbound(f"{recorder.url}/gone"))
    assert caught.value.code == "unknown_receiver"
    assert recorder.received == []


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    """Nothing listening on the port raises TransientDeliveryError naming the error class."""
    url = f"http://127.0.0.1:{free_port()}/hook"
    channel = WebhookChannel([WebhookReceiver(url=url, secret=SecretStr(SECRET))], session)
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(outbound(url))
    assert "ClientConnectorError" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_timeout_is_transient(session: aiohttp.ClientSession) -> None:
    """A receiver slower than timeout_seconds raises TransientDeliveryError."""
    async with Recorder(delay_seconds=0.5) as slow:
        url = f"{slow.url}/a"
        receivers = [WebhookReceiver(url=url, secret=SecretStr(SECRET))]
        channel = WebhookChannel(receivers, session, timeout_seconds=0.1)
        with pytest.raises(TransientDeliveryError) as caught:
            await channel.send(outbound(url))
    assert "Timeout" in str(caught.value)


async def test_lost_answer_is_transient_but_was_accepted(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A closed connection without answer is transient though the receiver recorded it,
    and the receiver side logs no error."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    async with Recorder(secret=SECRET.encode(), lose_answer_ratio=1.0) as losing:
        url = f"{losing.url}/a"
        receivers = [WebhookReceiver(url=url, secret=SecretStr(SECRET))]
        channel = WebhookChannel(receivers, session)
        with pytest.raises(TransientDeliveryError):
            await channel.send(outbound(url, delivery_id=7))
    assert losing.counts["accepted"] == losing.counts["answer_lost"] == 1
    assert [r.delivery_id for r in losing.received] == ["7"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_retry_keeps_the_delivery_id(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A retried delivery carries the same X-Broadcaster-Delivery, so receivers dedupe."""
    channel = make_channel(recorder, session)
    recorder.fail_next(1)
    url = f"{recorder.url}/a"
    with pytest.raises(TransientDeliveryError):
        await channel.send(outbound(url, delivery_id=9, attempts=1))
    await channel.send(outbound(url, delivery_id=9, attempts=2))
    [got] = recorder.received
    assert got.delivery_id == "9"
    assert json.loads(got.body)["attempt"] == 2


async def test_bad_secret_is_refused_by_the_recorder(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """A channel signing with another secret gets 401, a permanent http_401."""
    url = f"{recorder.url}/a"
    channel = WebhookChannel([WebhookReceiver(url=url, secret=SecretStr("wrong"))], session)
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.send(outbound(url))
    assert caught.value.code == "http_401"
    assert recorder.counts["bad_signature"] == 1


async def test_secret_never_in_repr_or_errors(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """The secret appears neither in repr(channel) nor in any delivery error message."""
    target = f"{recorder.url}/status/404"
    channel = make_channel(recorder, session, target)
    assert SECRET not in repr(channel)
    assert recorder.url in repr(channel)
    messages: list[str] = []
    for recipient, failures in ((f"{recorder.url}/a", 1), (target, 0), ("http://x/", 0)):
        recorder.fail_next(failures)
        try:
            await channel.send(outbound(recipient))
        except (TransientDeliveryError, PermanentDeliveryError) as exc:
            messages.append(f"{exc!s} {exc!r} {exc.__cause__!r}")
    assert len(messages) == 3
    assert not [m for m in messages if SECRET in m]


async def test_many_alerts_keep_the_cache_bounded(
    recorder: Recorder, session: aiohttp.ClientSession
) -> None:
    """Sends for many alerts still render each alert's own body (cache eviction is safe)."""
    channel = make_channel(recorder, session)
    url = f"{recorder.url}/a"
    for n in range(70):
        message = outbound(url, delivery_id=n)
        stored = stored_alert(f"x{n}")
        await channel.send(Outbound(delivery=message.delivery, alert=stored, sender="default"))
    await channel.send(outbound(url, delivery_id=99))
    ids = [json.loads(r.body)["alert_id"] for r in recorder.received]
    assert ids == [f"x{n}" for n in range(70)] + ["a1"]
    await channel.close()


async def test_recorder_random_failures_are_seeded() -> None:
    """Two recorders with the same seed and ratios make the same decisions."""
    outcomes: list[list[int]] = []
    for _ in range(2):
        async with (
            Recorder(fail_ratio=0.3, rate_limit_ratio=0.2, seed=5) as rec,
            aiohttp.ClientSession() as http,
        ):
            statuses = []
            for _ in range(20):
                async with http.post(f"{rec.url}/x", data=b"{}") as response:
                    statuses.append(response.status)
            outcomes.append(statuses)
            assert rec.counts["accepted"] == statuses.count(200) == len(rec.received)
            assert rec.counts["failed_5xx"] == statuses.count(503)
            assert rec.counts["rate_limited"] == statuses.count(429)
    assert outcomes[0] == outcomes[1]
    assert {200, 429, 503} <= set(outcomes[0])


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_try(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Through the engine: 500, 500, then 200; the accepted request's signature verifies and
    the delivery is sent after 3 attempts."""
    async with Recorder(secret=SECRET.encode()) as receiver:
        receiver.fail_next(2, 500)
        receivers = [WebhookReceiver(url=f"{receiver.url}/hook", secret=SecretStr(SECRET))]
        channel = WebhookChannel(receivers, session)
        async with engine(
            tmp_path, channel, backoff_base_seconds=0.05, backoff_cap_seconds=0.2
        ) as service:
            alert = await submit(service)
            service.start_dispatcher()
            await until_outbox_empty(service, 10)
            [row] = await service.store.list_deliveries(alert.id, limit=5)
            assert (row.state.value, row.attempts) == ("sent", 3)
        assert (receiver.counts["failed_5xx"], receiver.counts["accepted"]) == (2, 1)
        assert receiver.counts["bad_signature"] == 0  # the recorder checked it with verify()
        [got] = receiver.received
        assert json.loads(got.body)["alert_id"] == alert.id
