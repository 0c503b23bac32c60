"""X mentions become replies: the poller against the X simulator, through the real tweepy
client, into the store (linked to our posts, triaged, each once, no gap after downtime)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

from adapters.simulators.x import DEFAULT_USER, XSimulator
from adapters.store.sqlite import SqliteStore
from adapters.x_mentions import MentionsPoller
from broadcaster.config import XSettings
from broadcaster.ports import ReplySource, Role
from broadcaster.replies import ReplyService
from tests.conftest import RunningService
from tests.support.replies import all_replies, eventually, keyword_triage, start_listening

USER_ID = DEFAULT_USER["id"]
ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St",
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": ["x"],
}


def x_settings(x: XSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "access_token": "at",
        "access_token_secret": "ats",
        "api_base": x.url,
        "user_id": USER_ID,
        "poll_seconds": 0.1,
        **extra,
    }


async def test_mentions_are_stored_triaged_and_linked_to_our_post(tmp_path: Path) -> None:
    """A reply to our alert's post links to that alert; another mention stays unlinked;
    both carry the stand-in triage's categories and the author's handle."""
    async with XSimulator() as x:
        async for app in start_listening(tmp_path, channels={"x": x_settings(x)}):
            async with app.http.post(
                f"{app.url}/v1/alerts", json=ALERT, headers=app.auth(Role.ISSUER)
            ) as response:
                alert_id = (await response.json())["id"]

            await eventually(partial(_posted, app, alert_id), what="the alert posted on X")
            post_id = x.posts[0]["id"]
            answer = x.add_mention(
                "@EmergencyDev there is smoke and fire by the market",
                username="resident",
                in_reply_to=post_id,
            )
            other = x.add_mention("@EmergencyDev a man with a knife on King St", username="walker")

            await eventually(partial(_stored, app, 2), what="two mentions stored")
            by_id = {r.external_id: r for r in await all_replies(app)}
            linked, unlinked = by_id[answer], by_id[other]
            assert linked.source is ReplySource.X
            assert linked.alert_id == alert_id
            assert linked.in_reply_to == post_id
            assert linked.sender == "@resident"
            assert linked.categories == ("hazard",)
            assert linked.entities == {"words": ["fire", "smoke"]}
            assert unlinked.alert_id is None
            assert unlinked.categories == ("suspect",)
            assert unlinked.sender == "@walker"
            # The poller saves the cursor after it stores the page, so wait for it too.
            await eventually(partial(_cursor_is, app, other), what="the cursor at the newest")
            metric = app.service.metrics.replies.labels("x", "hazard")
            assert metric._value.get() == 1


async def test_mentions_made_while_stopped_arrive_once_after_restart(tmp_path: Path) -> None:
    """1,000 mentions posted while the service is down are all stored once after a restart,
    from the persisted cursor (no gap, no repeat)."""
    async with XSimulator() as x:
        settings = {"channels": {"x": x_settings(x)}}
        first = x.add_mention("@EmergencyDev hello")
        async for app in start_listening(tmp_path, **settings):
            await eventually(partial(_stored, app, 1), what="the first mention stored")
            await eventually(partial(_cursor_is, app, first), what="the cursor written")
        added = [x.add_mention(f"@EmergencyDev report {n}") for n in range(1000)]
        reads_before = x.counts["read"]
        async for app in start_listening(tmp_path, **settings):
            await eventually(partial(_stored, app, 1001), within=60, what="1,001 stored")
            await eventually(partial(_cursor_is, app, added[-1]), what="the cursor advanced")
            await asyncio.sleep(0.3)  # a repeat would show up as an extra count
            replies = await all_replies(app)
            ids = [r.external_id for r in replies]
            assert len(ids) == 1001
            assert set(ids) == {first, *added}
            created = app.service.metrics.replies.labels("x", "none")._value.get()
            assert created == 1000  # this process stored the 1,000 new ones, nothing twice
        # Ten pages of 100 caught up; then idle polls of one request each.
        assert x.counts["read"] - reads_before >= 10


async def _cursor_is(app: RunningService, value: str) -> bool:
    return bool(await app.service.store.get_cursor(f"x:mentions:{USER_ID}") == value)


async def _stored(app: RunningService, count: int) -> bool:
    return len(await all_replies(app)) >= count


async def _posted(app: RunningService, alert_id: str) -> bool:
    rows = await app.service.store.list_deliveries(alert_id, limit=1)
    return bool(rows and rows[0].provider_ref)


async def test_poller_waits_for_the_window_reset_instead_of_hitting_429(tmp_path: Path) -> None:
    """With two requests per window, a three-page catch-up waits for the reset the headers
    announce and never gets a 429."""
    async with XSimulator(mentions_limit=2, window_seconds=1.0) as x:
        ids = [x.add_mention(f"@EmergencyDev note {n}") for n in range(250)]
        store = await SqliteStore.open(tmp_path / "x.db")
        try:
            await store.migrate()
            settings = XSettings(bearer_token="bt", api_base=x.url, user_id=USER_ID)
            poller = MentionsPoller(settings, ReplyService(store, keyword_triage), store)
            try:
                assert await poller.poll_once() == 250
            finally:
                await poller.close()
            assert x.counts["rate_limited"] == 0
            stored = {r.external_id for r in await store.list_replies(limit=1000)}
            assert stored == set(ids)
            assert await store.get_cursor(poller.cursor_name) == ids[-1]
        finally:
            await store.close()
