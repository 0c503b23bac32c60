"""A NUL (U+0000) or a lone surrogate from outside never turns into a 5xx or a retry loop on
PostgreSQL, which cannot store one: replies and providers' answers keep it as U+FFFD, alert
ids that no alert can have are 404, and anything else the database refuses for its
characters is bad input (422), not an outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.store.postgres import PostgresStore
from broadcaster.errors import StoreError, UnstorableText
from broadcaster.ports import DeliveryState, NewReply, Role
from tests.conftest import start_service
from tests.integration.conftest import postgres_schema
from tests.integration.test_reply_store import reply
from tests.support.outbox import LEASE, T0, make_new, outcome, plan, records


async def test_the_public_and_the_api_on_postgresql(tmp_path: Path) -> None:
    """Tips with a NUL in text, contact or link are stored (as U+FFFD) and answered 202;
    alert routes with a NUL in the id are 404, never 503."""
    async with postgres_schema() as (dsn, schema_name, _admin):
        url = f"{dsn}?search_path={schema_name}"
        services = start_service(
            tmp_path, database={"url": url}, approval={"two_person_severities": []}
        )
        async for app in services:
            for body in (
                {"text": "Smoke\u0000 by the mill"},
                {"text": "Smoke by the mill", "contact": "+44\u0000"},
                {"text": "Smoke by the mill", "media_url": "https://example.org/\u0000.jpg"},
            ):
                async with app.http.post(f"{app.url}/v1/replies", json=body) as response:
                    assert response.status == 202, (body, await response.text())
            stored = await app.service.store.list_replies(limit=10)
            assert "Smoke\ufffd by the mill" in [r.text for r in stored]
            admin = app.auth(Role.ADMIN)
            for method, path in (
                ("GET", "/v1/alerts/abc%00"),
                ("GET", "/v1/alerts/abc%00/deliveries"),
                ("POST", "/v1/alerts/abc%00/cancel"),
                ("POST", "/v1/alerts/abc%00/approve"),
                ("GET", "/alerts/abc%00.cap"),
                ("GET", "/alerts/abc%00"),
            ):
                async with app.http.request(
                    method, f"{app.url}{path}", json={"reason": "test"}, headers=admin
                ) as response:
                    assert response.status == 404, (method, path, response.status)


async def test_the_store_calls_a_nul_bad_input_not_an_outage() -> None:
    """PostgreSQL refuses a NUL in text with UnstorableText (a 422 IntakeError), never a
    StoreError, which callers would retry (an MQTT message for ever) or answer 503."""
    async with postgres_schema() as (dsn, schema_name, _admin):
        store = await PostgresStore.open(dsn, schema=schema_name, max_size=2)
        try:
            await store.migrate()
            with pytest.raises(UnstorableText) as refused:
                await store.insert_reply(NewReply(reply("SM-nul", "a\u0000b")))
            assert not isinstance(refused.value, StoreError)
            assert refused.value.status == 422
            assert await store.list_replies(limit=10) == []
        finally:
            await store.close()


async def test_a_providers_answer_with_a_nul_is_recorded_with_the_rest() -> None:
    """Outcomes whose provider error or message id holds a NUL or a lone surrogate (from a
    provider's JSON) are recorded in one batch with the others: none stays `sending` to be
    claimed and sent again."""
    async with postgres_schema() as (dsn, schema_name, _admin):
        store = await PostgresStore.open(dsn, schema=schema_name, max_size=2)
        try:
            await store.migrate()
            new = make_new(
                deliveries=plan("sms", "+447700900001", "+447700900002", "+447700900003")
            )
            await store.insert_alert(new)
            claimed = await store.claim_deliveries("sms", limit=10, now=T0, lease_until=LEASE)
            first, second, third = claimed
            await store.finish_deliveries(
                [
                    outcome(first, DeliveryState.FAILED, error="21211: bad number \x00"),
                    outcome(second, DeliveryState.SENT, provider_ref="SM\ud800"),
                    outcome(third, DeliveryState.SENT, provider_ref="SM3"),
                ]
            )
            done = await records(store, new.id)
            assert {r.state for r in done.values()} == {DeliveryState.FAILED, DeliveryState.SENT}
            assert done["+447700900001"].last_error == "21211: bad number \ufffd"
            assert done["+447700900002"].provider_ref == "SM\ufffd"
        finally:
            await store.close()
