"""An X (Twitter) API v2 stand-in on loopback, for tests and benchmarks.

Shapes follow the X API v2 OpenAPI and the responses tweepy's own test suite recorded from the
live API. The real `tweepy.asynchronous.AsyncClient` reaches it through an aiohttp session
from `session_for(simulator.url)` (adapters.x): tweepy hard-codes https://api.twitter.com,
and that session's client middleware rewrites each request's scheme, host and port to the
simulator's.

Routes, each request in this order:
1. Authorization: POST /2/tweets and GET /2/users/me need user context, an
   `OAuth ...` (1.0a) header; a `Bearer` token there is app-only and gets X's 403
   "Unsupported Authentication"; anything else 401. Mentions also take a Bearer token.
2. Per-endpoint fixed-window rate limit (`post_limit`, `mentions_limit`, `me_limit` per
   `window_seconds`): past it 429. Every answer carries `x-rate-limit-limit`,
   `x-rate-limit-remaining` and `x-rate-limit-reset` (epoch seconds) for its endpoint.
3. Statuses queued by `fail_next(n, status)`, then a seeded draw with `fail_ratio`: 503.
4. The endpoint itself:
   - `POST /2/tweets` {"text", "reply": {"in_reply_to_tweet_id"}} -> 201
     {"data": {"id", "text", "edit_history_tweet_ids"}}; the same text again within
     `duplicate_window_seconds` -> 403 duplicate content; recorded in `posts`.
   - `GET /2/users/me` -> {"data": {"id", "name", "username"}}.
   - `GET /2/users/{id}/mentions` (since_id, until_id, max_results 5..100, pagination_token,
     tweet.fields, expansions author_id / referenced_tweets.id) from `add_mention(...)`,
     newest first, with includes.users / includes.tweets and meta.

Post ids come from one increasing counter shared by posts and mentions, like snowflakes, so
since_id works across both. Same seed, same requests in the same order -> same decisions.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters.simulators.loopback import LoopbackServer

# The channel owns the host rewrite; re-exported here for the tests that drive tweepy directly.
from adapters.x import rewrite_to, session_for

DEFAULT_USER = {"id": "1072250532645998596", "name": "Broadcaster Test", "username": "EmergencyDev"}
FIRST_ID = 1_800_000_000_000_000_000
MAX_TEXT = 280
COUNTERS = ("posted", "duplicate", "rate_limited", "failed_5xx", "unauthorized", "read")

POST = "POST /2/tweets"
ME = "GET /2/users/me"
MENTIONS = "GET /2/users/:id/mentions"

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
APP_ONLY_DETAIL = (
    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
    "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context]."
)


def problem(title: str, detail: str, status: int, type_: str = "about:blank") -> dict[str, Any]:
    """X's RFC 7807 problem body."""
    return {"title": title, "detail": detail, "type": type_, "status": status}


@dataclass(slots=True)
class _Window:
    limit: int
    started: float = -math.inf
    used: int = 0


class XSimulator(LoopbackServer):
    """An aiohttp server on 127.0.0.1:<free port> that answers like the X API v2."""

    def __init__(
        self,
        *,
        user: Mapping[str, str] = DEFAULT_USER,
        post_limit: int = 100,
        mentions_limit: int = 180,
        me_limit: int = 75,
        window_seconds: float = 900.0,
        duplicate_window_seconds: float = 86_400.0,
        fail_ratio: float = 0.0,
        seed: int = 1,
        port: int = 0,
    ) -> None:
        self.user = dict(user)
        self.window_seconds = window_seconds
        self.duplicate_window_seconds = duplicate_window_seconds
        self.fail_ratio = fail_ratio
        self._windows = {
            POST: _Window(post_limit),
            MENTIONS: _Window(mentions_limit),
            ME: _Window(me_limit),
        }
        self._random = random.Random(seed)  # noqa: S311 - simulated faults, not secrets
        self._forced: deque[int] = deque()
        self._next_id = FIRST_ID
        self._users: dict[str, dict[str, str]] = {self.user["id"]: self.user}
        self._tweets: dict[str, dict[str, Any]] = {}
        self.mentions: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        super().__init__(port)

    def __repr__(self) -> str:
        return f"XSimulator(url={self.url if self._port else None!r}, counts={self.counts!r})"

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next `n` authorized, in-limit requests with `status`."""
        self._forced.extend([status] * n)

    def add_mention(
        self,
        text: str,
        *,
        username: str = "resident",
        name: str | None = None,
        author_id: str | None = None,
        in_reply_to: str | None = None,
    ) -> str:
        """A post by `username` mentioning our user; returns its id (newer than all before)."""
        if author_id is None:
            known = [u["id"] for u in self._users.values() if u["username"] == username]
            author_id = known[0] if known else str(10_000 + len(self._users))
        self._users.setdefault(
            author_id, {"id": author_id, "name": name or username, "username": username}
        )
        tweet = self._new_tweet(text, author_id, in_reply_to)
        self.mentions.append(tweet)
        return str(tweet["id"])

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2/tweets", self._create)
        app.router.add_get("/2/users/me", self._me)
        app.router.add_get("/2/users/{id}/mentions", self._mentions)

    # --- shared steps --------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _headers(self, endpoint: str, now: float) -> dict[str, str]:
        window = self._windows[endpoint]
        if now - window.started >= self.window_seconds:
            window.started, window.used = now, 0
        reset = time.time() + (window.started + self.window_seconds - now)
        return {
            "x-rate-limit-limit": str(window.limit),
            "x-rate-limit-remaining": str(max(window.limit - window.used, 0)),
            "x-rate-limit-reset": str(math.ceil(reset)),
        }

    def _answer(self, body: dict[str, Any], status: int, headers: dict[str, str]) -> web.Response:
        return web.Response(
            text=json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _problem(self, status: int, headers: dict[str, str]) -> web.Response:
        titles = {
            429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        title = titles.get(status, "Error")
        if status == 429:
            self._count("rate_limited")
        elif status >= 500:
            self._count("failed_5xx")
        return self._answer(problem(title, title, status), status, headers)

    def _invalid(self, detail: str, headers: dict[str, str]) -> web.Response:
        body = problem(
            "Invalid Request",
            "One or more parameters to your request was invalid.",
            400,
            "https://api.twitter.com/2/problems/invalid-request",
        )
        body["errors"] = [{"message": detail}]
        return self._answer(body, 400, headers)

    def _gate(
        self, request: web.Request, endpoint: str, *, user_context: bool
    ) -> tuple[web.Response | None, dict[str, str]]:
        """Auth, rate limit and injected faults: (a refusal or None, the rate-limit headers)."""
        now = time.monotonic()
        headers = self._headers(endpoint, now)
        auth = request.headers.get("Authorization", "")
        if user_context and auth.startswith("Bearer "):
            self._count("unauthorized")
            body = problem(
                "Unsupported Authentication",
                APP_ONLY_DETAIL,
                403,
                "https://api.twitter.com/2/problems/unsupported-authentication",
            )
            return self._answer(body, 403, headers), headers
        if not (auth.startswith("OAuth ") or (not user_context and auth.startswith("Bearer "))):
            self._count("unauthorized")
            unauthorized = problem("Unauthorized", "Unauthorized", 401)
            return self._answer(unauthorized, 401, headers), headers
        window = self._windows[endpoint]
        if window.used >= window.limit:
            return self._problem(429, headers), headers
        window.used += 1
        headers["x-rate-limit-remaining"] = str(window.limit - window.used)
        if self._forced:
            return self._problem(self._forced.popleft(), headers), headers
        if self._random.random() < self.fail_ratio:
            return self._problem(503, headers), headers
        return None, headers

    def _new_tweet(self, text: str, author_id: str, in_reply_to: str | None) -> dict[str, Any]:
        tweet_id = str(self._next_id)
        self._next_id += 1
        tweet: dict[str, Any] = {
            "id": tweet_id,
            "text": text,
            "edit_history_tweet_ids": [tweet_id],
            "author_id": author_id,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conversation_id": tweet_id,
        }
        if in_reply_to is not None:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": in_reply_to}]
            parent = self._tweets.get(in_reply_to)
            if parent is not None:
                tweet["conversation_id"] = parent["conversation_id"]
                tweet["in_reply_to_user_id"] = parent["author_id"]
        self._tweets[tweet_id] = tweet
        return tweet

    # --- endpoints -----------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        refused, headers = self._gate(request, POST, user_context=True)
        if refused is not None:
            return refused
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        reply = payload.get("reply") if isinstance(payload, dict) else None
        in_reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        if not isinstance(text, str) or not text:
            return self._invalid("The `text` field is required and must be a string.", headers)
        if len(text) > MAX_TEXT:
            return self._invalid("Your Tweet text is too long.", headers)
        now = time.monotonic()
        if any(
            post["text"] == text and now - post["at"] < self.duplicate_window_seconds
            for post in self.posts
        ):
            self._count("duplicate")
            return self._answer(problem("Forbidden", DUPLICATE_DETAIL, 403), 403, headers)
        tweet = self._new_tweet(text, self.user["id"], in_reply_to and str(in_reply_to))
        self.posts.append({"id": tweet["id"], "text": text, "in_reply_to": in_reply_to, "at": now})
        self._count("posted")
        data = {k: tweet[k] for k in ("id", "text", "edit_history_tweet_ids")}
        return self._answer({"data": data}, 201, headers)

    async def _me(self, request: web.Request) -> web.Response:
        refused, headers = self._gate(request, ME, user_context=True)
        if refused is not None:
            return refused
        self._count("read")
        return self._answer({"data": dict(self.user)}, 200, headers)

    async def _mentions(self, request: web.Request) -> web.Response:
        refused, headers = self._gate(request, MENTIONS, user_context=False)
        if refused is not None:
            return refused
        query = request.query
        try:
            max_results = int(query.get("max_results", "10"))
            since_id = int(query["since_id"]) if "since_id" in query else None
            until_id = int(query["until_id"]) if "until_id" in query else None
            offset = int(query.get("pagination_token") or "0")
        except ValueError as error:
            return self._invalid(f"A query parameter is not a valid number: {error}", headers)
        if not 5 <= max_results <= 100:
            detail = (
                f"The `max_results` query parameter value [{max_results}] is not between 5 and 100"
            )
            return self._invalid(detail, headers)
        self._count("read")
        mentions = [] if request.match_info["id"] != self.user["id"] else self.mentions
        matched = [
            t
            for t in sorted(mentions, key=lambda t: int(t["id"]), reverse=True)
            if (since_id is None or int(t["id"]) > since_id)
            and (until_id is None or int(t["id"]) < until_id)
        ]
        page = matched[offset : offset + max_results]
        fields = set(query.get("tweet.fields", "").split(","))
        expansions = set(query.get("expansions", "").split(","))
        shown = {"id", "text", "edit_history_tweet_ids"} | fields
        if "author_id" in expansions:
            shown.add("author_id")
        if "referenced_tweets.id" in expansions:
            shown.add("referenced_tweets")

        def render(tweet: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in tweet.items() if k in shown}

        meta: dict[str, Any] = {"result_count": len(page)}
        if not page:
            return self._answer({"meta": meta}, 200, headers)
        body: dict[str, Any] = {"data": [render(t) for t in page]}
        includes: dict[str, list[dict[str, Any]]] = {}
        if "author_id" in expansions:
            authors = dict.fromkeys(t["author_id"] for t in page)
            includes["users"] = [dict(self._users[a]) for a in authors]
        if "referenced_tweets.id" in expansions:
            referenced = dict.fromkeys(
                ref["id"] for t in page for ref in t.get("referenced_tweets", ())
            )
            known = [render(self._tweets[r]) for r in referenced if r in self._tweets]
            if known:
                includes["tweets"] = known
        if includes:
            body["includes"] = includes
        meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if offset + max_results < len(matched):
            meta["next_token"] = str(offset + max_results)
        body["meta"] = meta
        return self._answer(body, 200, headers)


__all__ = [
    "DEFAULT_USER",
    "XSimulator",
    "problem",
    "rewrite_to",
    "session_for",
]
