"""X mentions as replies: polls `GET /2/users/:id/mentions` through tweepy's AsyncClient and
hands each mention to the reply service.

Contract:
- Every `channels.x.poll_seconds`, one catch-up: pages of up to 100 mentions newer than the
  cursor (`since_id`), newest first, following `pagination_token` to the end, with
  `expansions=author_id,referenced_tweets.id` and `tweet.fields=conversation_id,created_at,
  referenced_tweets,author_id`. Each page is stored (the reply service, unique on the post
  id) before the next is asked for.
- The cursor (`cursors` row `x:mentions:<user_id>`) becomes the first page's `newest_id`
  only after every page of the catch-up is stored. So nothing is skipped: a crash, an error
  or a shutdown midway leaves the old cursor and the next catch-up starts over from it; what
  it meets again is already stored and changes nothing. With no cursor yet, the first
  catch-up takes every mention X still lists (X keeps the newest 800).
- Rate limits: the `x-rate-limit-remaining` / `-reset` headers of each answer are kept; with
  none remaining, the next request waits until the reset. A 429 waits until its reset (at
  least 1 s) and asks for the same page again. Other errors (5xx, network, the store) end
  the catch-up, logged, and the next poll retries from the cursor.
- Authentication: app-only with `bearer_token` when set, else OAuth 1.0a user context.
  Our own posts (author = `user_id`) are not replies and are skipped.
- The sender of a mention is "@<username>" (the expanded author), else the author id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import tweepy
from tweepy.asynchronous import AsyncClient

from adapters.x import REQUEST_TIMEOUT_SECONDS, session_for
from broadcaster.config import XSettings
from broadcaster.errors import StoreError
from broadcaster.ports import Reply, ReplySource, ReplyStore
from broadcaster.replies import ReplyService

log = logging.getLogger(__name__)

PAGE_SIZE = 100
TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "referenced_tweets"]
EXPANSIONS = ["author_id", "referenced_tweets.id"]
USER_FIELDS = ["username"]
_RETRY_ERRORS = (tweepy.HTTPException, aiohttp.ClientError, TimeoutError, OSError, StoreError)


def _header_float(headers: Any, name: str) -> float | None:
    try:
        value = headers.get(name) if headers is not None else None
        return float(value) if value is not None else None
    except ValueError:
        return None


def _replied_to(tweet: dict[str, Any]) -> str | None:
    for ref in tweet.get("referenced_tweets") or ():
        if ref.get("type") == "replied_to" and ref.get("id"):
            return str(ref["id"])
    return None


def _created_at(tweet: dict[str, Any]) -> datetime:
    raw = tweet.get("created_at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


class MentionsPoller:
    def __init__(
        self,
        settings: XSettings,
        replies: ReplyService,
        store: ReplyStore,
        *,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not settings.user_id:
            raise ValueError("the mentions poller needs channels.x.user_id")
        self._settings = settings
        self._user_id = settings.user_id
        self._replies = replies
        self._store = store
        self._page_size = page_size
        self._clock = clock
        self._sleep = sleep
        self._user_auth = settings.bearer_token is None
        self._client = AsyncClient(
            bearer_token=(
                settings.bearer_token.get_secret_value() if settings.bearer_token else None
            ),
            consumer_key=settings.consumer_key,
            consumer_secret=(
                settings.consumer_secret.get_secret_value() if settings.consumer_secret else None
            ),
            access_token=settings.access_token,
            access_token_secret=(
                settings.access_token_secret.get_secret_value()
                if settings.access_token_secret
                else None
            ),
            return_type=aiohttp.ClientResponse,
        )
        self._session: aiohttp.ClientSession | None = None
        self._remaining: float | None = None
        self._reset_at: float | None = None

    @property
    def cursor_name(self) -> str:
        return f"x:mentions:{self._user_id}"

    async def run(self) -> None:
        """Poll until cancelled."""
        try:
            while True:
                try:
                    await self.poll_once()
                except _RETRY_ERRORS as exc:
                    log.warning("x mentions: catch-up stopped (%s); retrying from the cursor", exc)
                except Exception:  # an odd answer must not end listening for good
                    log.exception("x mentions: catch-up failed; retrying from the cursor")
                await self._sleep(self._settings.poll_seconds)
        finally:
            await self.close()

    async def poll_once(self) -> int:
        """One catch-up from the cursor; returns how many new replies were stored."""
        since = await self._store.get_cursor(self.cursor_name)
        newest: str | None = None
        token: str | None = None
        created = 0
        while True:
            body = await self._page(since, token)
            meta = body.get("meta") or {}
            if newest is None and meta.get("newest_id"):
                newest = str(meta["newest_id"])
            created += await self._ingest(body)
            token = meta.get("next_token")
            if not token:
                break
        if newest is not None and (since is None or int(newest) > int(since)):
            await self._store.set_cursor(self.cursor_name, newest, datetime.now(UTC))
        return created

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _page(self, since: str | None, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_results": self._page_size,
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
        }
        if since is not None:
            params["since_id"] = since
        if token is not None:
            params["pagination_token"] = token
        while True:
            await self._wait_for_budget()
            try:
                response = await self._client_in_loop().get_users_mentions(
                    self._user_id, user_auth=self._user_auth, **params
                )
            except tweepy.TooManyRequests as exc:
                self._observe(exc.response.headers)
                wait = max(1.0, (self._reset_at or 0.0) - self._clock())
                log.warning("x mentions: rate limited; waiting %.0f s", wait)
                await self._sleep(wait)
                continue
            self._observe(response.headers)
            body: dict[str, Any] = await response.json()
            return body

    async def _wait_for_budget(self) -> None:
        if self._remaining is None or self._remaining > 0 or self._reset_at is None:
            return
        wait = self._reset_at - self._clock()
        if wait > 0:
            log.info("x mentions: window used up; waiting %.0f s for its reset", wait)
            await self._sleep(wait)
        self._remaining = None

    def _observe(self, headers: Any) -> None:
        remaining = _header_float(headers, "x-rate-limit-remaining")
        reset_at = _header_float(headers, "x-rate-limit-reset")
        if remaining is not None:
            self._remaining = remaining
        if reset_at is not None:
            self._reset_at = reset_at

    async def _ingest(self, body: dict[str, Any]) -> int:
        users = {
            str(u.get("id")): str(u.get("username"))
            for u in (body.get("includes") or {}).get("users") or ()
            if u.get("username")
        }
        replies = [
            self._reply(tweet, users)
            for tweet in body.get("data") or ()
            if str(tweet.get("author_id")) != self._user_id
        ]
        # One page at once: concurrent inserts share the store's commits.
        results = await asyncio.gather(*(self._replies.ingest(r) for r in replies))
        return sum(1 for r in results if r.created)

    @staticmethod
    def _reply(tweet: dict[str, Any], users: dict[str, str]) -> Reply:
        author = str(tweet.get("author_id") or "")
        username = users.get(author)
        conversation = tweet.get("conversation_id")
        return Reply(
            source=ReplySource.X,
            external_id=str(tweet["id"]),
            text=str(tweet.get("text") or ""),
            received_at=_created_at(tweet),
            sender=f"@{username}" if username else (author or None),
            in_reply_to=_replied_to(tweet),
            conversation_id=str(conversation) if conversation else None,
        )

    def _client_in_loop(self) -> AsyncClient:
        if self._session is None or self._session.closed:
            self._session = session_for(
                self._settings.api_base,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            )
            self._client.session = self._session
        return self._client
