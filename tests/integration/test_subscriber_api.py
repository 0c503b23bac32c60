"""Admin REST for subscribers: create/update, read, page, delete; roles and validation."""

from __future__ import annotations

from datetime import UTC, datetime

from broadcaster.ports import Role
from tests.conftest import RunningService

PHONE = "+447911123456"


async def test_admin_creates_reads_updates_and_deletes(app: RunningService) -> None:
    """201 then 200 for the same number; read by E.164; page; delete then 404."""
    url = f"{app.url}/v1/subscribers"
    admin = app.auth(Role.ADMIN)
    body = {"phone": "+44 7911 123456", "lat": 53.48, "lon": -2.24, "groups": ["residents"]}
    async with app.http.post(url, json=body, headers=admin) as response:
        assert response.status == 201
        created = await response.json()
    assert (created["phone"], created["groups"], created["opted_out_at"]) == (
        PHONE,
        ["residents"],
        None,
    )
    async with app.http.post(url, json={**body, "language": "cy"}, headers=admin) as response:
        assert response.status == 200
        assert (await response.json())["language"] == "cy"
    async with app.http.get(f"{url}/%2B447911123456", headers=admin) as response:
        assert response.status == 200
    async with app.http.get(f"{url}?limit=1", headers=admin) as response:
        page = await response.json()
        assert [s["phone"] for s in page["subscribers"]] == [PHONE]
        assert "next" in page
    async with app.http.delete(f"{url}/%2B447911123456", headers=admin) as response:
        assert response.status == 204
    async with app.http.delete(f"{url}/%2B447911123456", headers=admin) as response:
        assert response.status == 404


async def test_subscriber_routes_need_admin_and_valid_input(app: RunningService) -> None:
    """An issuer gets 403; a bad number 422; broken JSON 400; half a position 422."""
    url = f"{app.url}/v1/subscribers"
    async with app.http.post(url, json={"phone": PHONE}, headers=app.auth(Role.ISSUER)) as response:
        assert response.status == 403
    admin = app.auth(Role.ADMIN)
    async with app.http.post(url, json={"phone": "12345"}, headers=admin) as response:
        assert response.status == 422
        assert (await response.json())["error"] == "invalid_phone"
    async with app.http.post(url, data=b"{", headers=admin) as response:
        assert response.status == 400
    async with app.http.post(url, json={"phone": PHONE, "lat": 1.0}, headers=admin) as response:
        assert response.status == 422
    async with app.http.get(f"{url}?limit=x", headers=admin) as response:
        assert response.status == 400


async def test_reads_show_the_flag_and_an_admin_update_clears_it(app: RunningService) -> None:
    """GET shows flagged/flagged_at; a POST updating that number clears the flag, opt-out kept."""
    url = f"{app.url}/v1/subscribers"
    admin = app.auth(Role.ADMIN)
    async with app.http.post(url, json={"phone": PHONE}, headers=admin) as response:
        assert response.status == 201
        assert (await response.json())["flagged"] is None
    store = app.service.store
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert await store.flag_subscriber(PHONE, "21614 not a mobile number", at)
    assert await store.set_opted_out(PHONE, at)
    async with app.http.get(f"{url}/%2B447911123456", headers=admin) as response:
        shown = await response.json()
    assert (shown["flagged"], shown["flagged_at"]) == (
        "21614 not a mobile number",
        "2026-05-01T12:00:00+00:00",
    )
    async with app.http.get(url, headers=admin) as response:
        (listed,) = (await response.json())["subscribers"]
        assert listed["flagged"] == "21614 not a mobile number"
    async with app.http.post(
        url, json={"phone": PHONE, "language": "cy"}, headers=admin
    ) as response:
        assert response.status == 200
        updated = await response.json()
    assert (updated["flagged"], updated["flagged_at"]) == (None, None)
    assert updated["opted_out_at"] == "2026-05-01T12:00:00+00:00"
