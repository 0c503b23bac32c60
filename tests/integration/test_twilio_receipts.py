"""Twilio delivery receipts end to end: the whole service sends SMS through the simulator,
whose signed status callbacks move deliveries to delivered / undelivered; forgeries change
nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from twilio.request_validator import RequestValidator

from adapters.simulators.twilio import TwilioSimulator
from adapters.store.sqlite import SqliteStore
from broadcaster.ports import Role, Subscriber
from tests.conftest import start_service
from tests.support.broker import free_port

PHONES = ["+447911000001", "+447911000002", "+447911000003"]
ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St",
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": ["sms"],
    "areas": [{"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}],
}


async def seed(path: Path) -> None:
    store = await SqliteStore.open(path)
    await store.migrate()
    people = [Subscriber(phone, 53.48, -2.24) for phone in PHONES]
    await store.upsert_subscribers(people, datetime.now(UTC))
    await store.close()


async def test_signed_receipts_apply_and_forged_ones_do_not(tmp_path: Path) -> None:
    """Receipts move deliveries to delivered/undelivered; a forged one gets 403, no change."""
    await seed(tmp_path / "broadcaster.db")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with TwilioSimulator(undeliverable=[PHONES[2]], callback_delay=0.3) as twilio:
        sms = {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_numbers": ["+15005550001"],
            "api_base": twilio.url,
        }
        async for app in start_service(
            tmp_path,
            http={"port": port, "public_url": public},
            channels={"sms": sms},
            approval={"two_person_severities": []},
        ):
            async with app.http.post(
                f"{app.url}/v1/alerts", json=ALERT, headers=app.auth(Role.ISSUER)
            ) as response:
                assert response.status == 201
                alert_id = (await response.json())["id"]
            states: dict[str, str] = {}
            for _ in range(100):
                await asyncio.sleep(0.05)
                rows = await app.service.store.list_deliveries(alert_id, limit=10)
                states = {r.recipient: r.state.value for r in rows}
                if sorted(states.values()) == ["delivered", "delivered", "undelivered"]:
                    break
            assert states == {
                PHONES[0]: "delivered",
                PHONES[1]: "delivered",
                PHONES[2]: "undelivered",
            }
            rows = await app.service.store.list_deliveries(alert_id, limit=10)
            failed = next(r for r in rows if r.recipient == PHONES[2])
            assert "30003" in (failed.last_error or "")

            # A forged receipt (wrong token) that would fail a delivered message: refused.
            sid = next(r.provider_ref for r in rows if r.recipient == PHONES[0])
            params = {"MessageSid": str(sid), "MessageStatus": "failed", "ErrorCode": "30008"}
            url = f"{public}/hooks/twilio/status"
            forged = RequestValidator("not-the-token").compute_signature(url, params)
            async with app.http.post(
                url, data=params, headers={"X-Twilio-Signature": forged}
            ) as response:
                assert response.status == 403
            async with app.http.post(url, data=params) as response:
                assert response.status == 403
            rows = await app.service.store.list_deliveries(alert_id, limit=10)
            assert next(r for r in rows if r.recipient == PHONES[0]).state.value == "delivered"
