"""The X simulator, driven by the real tweepy client over loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import tweepy
from tweepy.asynchronous import AsyncClient

from adapters.simulators.x import XSimulator, session_for

# --- X -----------------------------------------------------------------------------------


@pytest.fixture
async def x_sim() -> AsyncIterator[XSimulator]:
    async with XSimulator(post_limit=100, window_seconds=30) as sim:
        yield sim


@pytest.fixture
async def x_client(x_sim: XSimulator) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(
        bearer_token="app-bearer",
        consumer_key="ck",
        consumer_secret="cs",
        access_token="at",
        access_token_secret="ats",
    )
    # tweepy hard-codes https://api.twitter.com; this session's middleware reroutes it.
    async with session_for(x_sim.url) as session:
        client.session = session
        yield client


async def test_x_create_tweet_and_reply(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """create_tweet returns the new id; a reply is recorded with its in_reply_to."""
    first = await x_client.create_tweet(text="Flood warning for the river valley")
    assert first.data["text"] == "Flood warning for the river valley"
    assert first.data["edit_history_tweet_ids"] == [first.data["id"]]
    mention = x_sim.add_mention("@EmergencyDev is the bridge open?", username="ana")
    reply = await x_client.create_tweet(text="The bridge is closed.", in_reply_to_tweet_id=mention)
    assert int(reply.data["id"]) > int(mention) > int(first.data["id"])
    assert [(p["id"], p["in_reply_to"]) for p in x_sim.posts] == [
        (first.data["id"], None),
        (reply.data["id"], mention),
    ]


async def test_x_get_me(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """get_me (OAuth 1.0a user context) answers the configured user."""
    me = await x_client.get_me()
    assert (str(me.data.id), me.data.username) == (x_sim.user["id"], x_sim.user["username"])


async def test_x_mentions_since_id_with_authors(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """get_users_mentions with since_id returns only newer mentions, authors in includes."""
    old = x_sim.add_mention("@EmergencyDev old question", username="old_timer")
    posted = await x_client.create_tweet(text="Shelter open at the school")
    newer = x_sim.add_mention(
        "@EmergencyDev which school?", username="ana", in_reply_to=posted.data["id"]
    )
    newest = x_sim.add_mention("@EmergencyDev water is rising on Elm St", username="ben")
    page = await x_client.get_users_mentions(
        x_sim.user["id"],
        since_id=old,
        max_results=10,
        expansions=["author_id", "referenced_tweets.id"],
        tweet_fields=["created_at", "conversation_id"],
    )
    assert [t.id for t in page.data] == [int(newest), int(newer)]
    assert page.meta == {"result_count": 2, "newest_id": newest, "oldest_id": newer}
    users = {u.id: u.username for u in page.includes["users"]}
    assert {t.author_id for t in page.data} == set(users)
    assert sorted(users.values()) == ["ana", "ben"]
    which = page.data[1]
    assert which.referenced_tweets[0].id == int(posted.data["id"])
    assert which.conversation_id == int(posted.data["id"])
    assert [t.id for t in page.includes["tweets"]] == [int(posted.data["id"])]
    empty = await x_client.get_users_mentions(x_sim.user["id"], since_id=newest)
    assert empty.data is None
    assert empty.meta == {"result_count": 0}


async def test_x_rate_limit_past_window(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """The 101st post inside the window raises TooManyRequests carrying x-rate-limit-reset."""
    before = time.time()
    for n in range(100):
        await x_client.create_tweet(text=f"update {n}")
    with pytest.raises(tweepy.TooManyRequests) as caught:
        await x_client.create_tweet(text="update 100")
    headers = caught.value.response.headers
    assert headers["x-rate-limit-limit"] == "100"
    assert headers["x-rate-limit-remaining"] == "0"
    assert before < int(headers["x-rate-limit-reset"]) <= before + 31
    assert caught.value.reset_time == int(headers["x-rate-limit-reset"])
    assert len(x_sim.posts) == 100
    me = await x_client.get_me(user_auth=True)  # another endpoint has its own window
    assert me.data.id == int(x_sim.user["id"])


async def test_x_duplicate_content_is_forbidden(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """Posting the same text twice raises tweepy.Forbidden with X's duplicate detail."""
    await x_client.create_tweet(text="Boil water notice lifted")
    with pytest.raises(tweepy.Forbidden) as caught:
        await x_client.create_tweet(text="Boil water notice lifted")
    assert "duplicate content" in str(caught.value)
    assert caught.value.response.headers["x-rate-limit-remaining"] == "98"
    assert len(x_sim.posts) == 1


async def test_x_requires_user_context(x_sim: XSimulator) -> None:
    """Posting without OAuth 1.0a is refused: no header 401, an app-only Bearer 403."""
    async with session_for(x_sim.url) as session:
        async with session.post("https://api.twitter.com/2/tweets", json={"text": "x"}) as r:
            assert r.status == 401
            assert r.headers["x-rate-limit-limit"] == "100"
        bearer_only = AsyncClient(bearer_token="app-bearer")
        bearer_only.session = session
        with pytest.raises(tweepy.Forbidden):
            await bearer_only.create_tweet(text="x", user_auth=False)
    assert x_sim.posts == []


async def test_x_mentions_paginate_and_validate(x_sim: XSimulator, x_client: AsyncClient) -> None:
    """Mentions page by next_token, newest first; max_results outside 5..100 is BadRequest."""
    ids = [x_sim.add_mention(f"@EmergencyDev report {n}") for n in range(7)]
    first = await x_client.get_users_mentions(x_sim.user["id"], max_results=5)
    assert [str(t.id) for t in first.data] == ids[::-1][:5]
    second = await x_client.get_users_mentions(
        x_sim.user["id"], max_results=5, pagination_token=first.meta["next_token"]
    )
    assert [str(t.id) for t in second.data] == ids[::-1][5:]
    assert "next_token" not in second.meta
    with pytest.raises(tweepy.BadRequest):
        await x_client.get_users_mentions(x_sim.user["id"], max_results=101)
