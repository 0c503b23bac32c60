"""X configured in the whole service: an alert posts, its Cancel replies in the same thread."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.simulators.x import XSimulator
from broadcaster.ports import Role
from tests.conftest import start_service

ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St",
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": ["x"],
}


async def test_cancel_is_posted_as_a_reply_to_the_original(tmp_path: Path) -> None:
    """The Cancel's post replies to the original's post, found through the outbox."""
    async with XSimulator() as x:
        credentials = {
            "consumer_key": "ck",
            "consumer_secret": "cs",
            "access_token": "at",
            "access_token_secret": "ats",
            "api_base": x.url,
        }
        async for app in start_service(
            tmp_path, channels={"x": credentials}, approval={"two_person_severities": []}
        ):
            issuer = app.auth(Role.ISSUER)
            async with app.http.post(f"{app.url}/v1/alerts", json=ALERT, headers=issuer) as r:
                original = (await r.json())["id"]
            for _ in range(100):
                if x.posts:
                    break
                await asyncio.sleep(0.05)
            cancel = {**ALERT, "msg_type": "Cancel", "references": [original]}
            cancel["headline"] = "All clear on Market St"
            async with app.http.post(f"{app.url}/v1/alerts", json=cancel, headers=issuer) as r:
                assert r.status == 201
            for _ in range(100):
                if len(x.posts) == 2:
                    break
                await asyncio.sleep(0.05)
            first, second = x.posts
            assert first["in_reply_to"] is None
            assert second["in_reply_to"] == first["id"]
            assert second["text"].startswith("CANCELLED")
