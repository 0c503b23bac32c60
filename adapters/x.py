"""The X channel: posts to the account's timeline through the real tweepy AsyncClient (OAuth
1.0a user context), reached at `channels.x.api_base` (the simulator in tests and the demo).

Contract:
- Audience: one recipient, "timeline": an alert is posted once, to the account's own timeline.
- Text: `alerts.tweet.render_posts` with a link to `<public_url>/alerts/<id>` when there is a
  public URL; mode "thread" (a numbered thread when it does not fit one post) or "link". A
  message costs its post count.
- Threads: each post of a thread replies to the one before. An Update or Cancel replies to
  the last post of the original's thread, which `thread_of(stored)` returns (None: a
  standalone post). The receipt's `provider_ref` is the id of the last post.
- Limits: X's post quota per window (`window_limit` per `window_seconds`), corrected by the
  `x-rate-limit-remaining` / `x-rate-limit-reset` headers of each answer (read from the raw
  aiohttp response: the client runs with `return_type=aiohttp.ClientResponse`); concurrency 1
  so threads, and the posts inside them, go out in order. A thread is not started when the
  last headers say the window has fewer posts left than it needs (transient, retried after
  the reset): a thread is not split by the quota when it can be avoided.
- Errors: 429 is transient, retried at `x-rate-limit-reset` (at least 1 s); 5xx, timeouts and
  connection errors are transient; 400, 401, 403 (duplicate content) and other 4xx are
  permanent.
- A thread cut off midway: the posts that went out are never posted again. On a transient
  error the ids posted so far are kept (in memory, per delivery) and the retry resumes after
  the last of them. On a permanent error the partial thread is the delivery's result: the send
  succeeds with the last post that went out, and the truncation is logged (the head is on the
  timeline, so a later Cancel must still reply to it). Progress is not durable: after a
  restart the retry starts over, and X refuses the head as duplicate content.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import tweepy
from tweepy.asynchronous import AsyncClient
from yarl import URL

from alerts.models import Alert, MsgType
from alerts.tweet import MAX_WEIGHTED_LENGTH, render_posts, weighted_length
from broadcaster.config import XSettings
from broadcaster.errors import (
    ConfigError,
    PayloadError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert, StoredReply

log = logging.getLogger(__name__)

TIMELINE = "timeline"
REQUEST_TIMEOUT_SECONDS = 10.0
_CACHE_SIZE = 256


def rewrite_to(api_base: str) -> aiohttp.ClientMiddlewareType:
    """An aiohttp client middleware sending every request to `api_base` (scheme, host, port).

    Path and query are kept byte for byte, so an OAuth 1.0a signature made for the
    original URL still matches what the server receives.
    """
    base = URL(api_base)
    if base.host is None:
        raise ValueError(f"api_base has no host: {api_base!r}")
    netloc = base.host if base.explicit_port is None else f"{base.host}:{base.explicit_port}"

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        original = request.url
        request.url = URL.build(
            scheme=base.scheme,
            host=netloc.partition(":")[0],
            port=base.explicit_port,
            path=original.raw_path,
            query_string=original.raw_query_string,
            encoded=True,
        )
        request.headers["Host"] = netloc
        return await handler(request)

    return middleware


def session_for(
    api_base: str, *, timeout: aiohttp.ClientTimeout | None = None
) -> aiohttp.ClientSession:
    """A session for `tweepy.asynchronous.AsyncClient.session` that talks to `api_base`
    (tweepy hard-codes https://api.twitter.com)."""
    if timeout is None:
        return aiohttp.ClientSession(middlewares=(rewrite_to(api_base),))
    return aiohttp.ClientSession(middlewares=(rewrite_to(api_base),), timeout=timeout)


@dataclass(slots=True)
class _Progress:
    """The posts of one delivery's thread that already went out (ids in order)."""

    posts: list[str]
    posted: list[str] = field(default_factory=list)


def _header_number(headers: Any, name: str) -> float | None:
    value = headers.get(name) if headers is not None else None
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


class XChannel:
    def __init__(
        self,
        settings: XSettings,
        *,
        public_url: str | None,
        thread_of: Callable[[StoredAlert], Awaitable[str | None]] | None = None,
        window_limit: int = 100,
        window_seconds: float = 900.0,
        mode: Literal["thread", "link"] = "thread",
    ) -> None:
        if (
            not settings.consumer_key
            or settings.consumer_secret is None
            or not settings.access_token
            or settings.access_token_secret is None
        ):
            raise ConfigError(
                "channels.x",
                "consumer_key, consumer_secret, access_token and access_token_secret are "
                "required (OAuth 1.0a user context)",
            )
        self._settings = settings
        self._link_base = f"{public_url.rstrip('/')}/alerts/" if public_url else None
        self._thread_of = thread_of
        self._mode: Literal["thread", "link"] = mode
        self._window_seconds = window_seconds
        self._client = AsyncClient(
            bearer_token=(
                settings.bearer_token.get_secret_value() if settings.bearer_token else None
            ),
            consumer_key=settings.consumer_key,
            consumer_secret=settings.consumer_secret.get_secret_value(),
            access_token=settings.access_token,
            access_token_secret=settings.access_token_secret.get_secret_value(),
            # The raw response (its body already read): the rate headers stay reachable.
            return_type=aiohttp.ClientResponse,
        )
        # Made inside the running loop, on the first send.
        self._session: aiohttp.ClientSession | None = None
        self._limits = ChannelLimits(
            window_limit=window_limit, window_seconds=window_seconds, concurrency=1
        )
        self._posts: dict[str, list[str]] = {}
        self._progress: dict[int, _Progress] = {}
        # The provider's view of the post window, from the last answer's headers.
        self._rate_limit: int | None = None
        self._rate_remaining: int | None = None
        self._rate_reset_at: float | None = None

    def __repr__(self) -> str:
        return f"XChannel(api={self._settings.api_base}, mode={self._mode})"

    @property
    def name(self) -> str:
        return "x"

    @property
    def limits(self) -> ChannelLimits:
        return self._limits

    def audience(self, alert: Alert) -> list[str]:
        return [TIMELINE]

    def exercise_audience(self, alert: Alert) -> list[str]:
        """Exercises and tests are posted only on an account configured for them."""
        return [TIMELINE] if self._settings.exercises else []

    def posts_for(self, stored: StoredAlert) -> list[str]:
        """The posts of this alert, rendered once per alert."""
        posts = self._posts.get(stored.id)
        if posts is None:
            link = f"{self._link_base}{stored.id}" if self._link_base else None
            posts = render_posts(stored.alert, link=link, mode=self._mode)
            if len(self._posts) >= _CACHE_SIZE:
                del self._posts[next(iter(self._posts))]
            self._posts[stored.id] = posts
        return posts

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return max(1, len(self.posts_for(alert)))

    async def send(self, message: Outbound) -> SendReceipt:
        delivery_id = message.delivery.id
        progress = self._progress.get(delivery_id)
        if progress is None:
            progress = _Progress(posts=self.posts_for(message.alert))
        if not progress.posted:
            self._check_budget(len(progress.posts))
        if progress.posted:
            reply_to: str | None = progress.posted[-1]
            log.info(
                "x: resuming a thread after post %d of %d",
                len(progress.posted),
                len(progress.posts),
            )
        elif message.alert.alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL) and self._thread_of:
            reply_to = await self._thread_of(message.alert)
        else:
            reply_to = None
        client = self._client_in_loop()
        if len(self._progress) >= _CACHE_SIZE and delivery_id not in self._progress:
            del self._progress[next(iter(self._progress))]
        self._progress[delivery_id] = progress
        for text in progress.posts[len(progress.posted) :]:
            try:
                response = await client.create_tweet(
                    text=text, in_reply_to_tweet_id=reply_to, user_auth=True
                )
                body = await response.json()
            except tweepy.HTTPException as exc:
                self._observe(exc.response.headers)
                error = self._mapped(exc)
                if isinstance(error, PermanentDeliveryError) and progress.posted:
                    return self._truncated(delivery_id, progress, error)
                self._forget(delivery_id, progress, error)
                raise error from exc
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                error = TransientDeliveryError(f"x: {type(exc).__name__}")
                self._forget(delivery_id, progress, error)
                raise error from exc
            self._observe(response.headers)
            post_id = str(body["data"]["id"])
            progress.posted.append(post_id)
            reply_to = post_id
        self._progress.pop(delivery_id, None)
        return self._receipt(progress.posted[-1])

    async def answer(self, reply: StoredReply, text: str) -> str:
        """A responder's answer to a mention (the `ReturnChannel` port): a post replying to
        it, starting with the author's @handle unless the text names it. Returns the post
        id; errors as `send` maps them."""
        handle = reply.sender or ""
        if handle and handle.lower() not in text.lower():
            text = f"{handle} {text}"
        if not text.strip() or weighted_length(text) > MAX_WEIGHTED_LENGTH:
            raise PayloadError(
                f"an X answer (with {handle or 'the handle'}) is at most "
                f"{MAX_WEIGHTED_LENGTH} weighted characters",
                code="invalid_answer",
            )
        client = self._client_in_loop()
        try:
            response = await client.create_tweet(
                text=text, in_reply_to_tweet_id=reply.external_id, user_auth=True
            )
            body = await response.json()
        except tweepy.HTTPException as exc:
            self._observe(exc.response.headers)
            raise self._mapped(exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise TransientDeliveryError(f"x: {type(exc).__name__}") from exc
        self._observe(response.headers)
        return str(body["data"]["id"])

    def _forget(
        self,
        delivery_id: int,
        progress: _Progress,
        error: TransientDeliveryError | PermanentDeliveryError,
    ) -> None:
        """Drop the progress of a delivery that will not resume: it failed for good, or
        nothing of it went out (its retry starts from the top)."""
        if isinstance(error, PermanentDeliveryError) or not progress.posted:
            self._progress.pop(delivery_id, None)

    def _check_budget(self, needed: int) -> None:
        """Raise (transient, nothing posted) when the last headers say this window has fewer
        posts left than the thread needs, so the quota does not cut it in two. A thread longer
        than a whole window goes anyway (resumed after each 429)."""
        if needed <= 1 or self._rate_remaining is None or self._rate_reset_at is None:
            return
        wait = self._rate_reset_at - time.time()
        limit = self._rate_limit if self._rate_limit is not None else self._limits.window_limit
        if wait > 0 and self._rate_remaining < needed and (limit is None or needed <= limit):
            raise TransientDeliveryError(
                f"x: {needed} posts needed, {self._rate_remaining} left in the window",
                retry_after=max(1.0, wait),
            )

    def _client_in_loop(self) -> AsyncClient:
        if self._session is None or self._session.closed:
            self._session = session_for(
                self._settings.api_base,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            )
            self._client.session = self._session
        return self._client

    def _observe(self, headers: Any) -> None:
        limit = _header_number(headers, "x-rate-limit-limit")
        remaining = _header_number(headers, "x-rate-limit-remaining")
        reset_at = _header_number(headers, "x-rate-limit-reset")
        if limit is not None:
            self._rate_limit = int(limit)
        if remaining is not None:
            self._rate_remaining = int(remaining)
        if reset_at is not None:
            self._rate_reset_at = reset_at

    def _receipt(self, provider_ref: str) -> SendReceipt:
        return SendReceipt(
            provider_ref=provider_ref,
            rate_remaining=self._rate_remaining,
            rate_reset_at=self._rate_reset_at,
        )

    def _truncated(
        self, delivery_id: int, progress: _Progress, error: PermanentDeliveryError
    ) -> SendReceipt:
        self._progress.pop(delivery_id, None)
        log.warning(
            "x: thread cut after post %d of %d (%s); its head stays posted",
            len(progress.posted),
            len(progress.posts),
            error,
        )
        return self._receipt(progress.posted[-1])

    def _mapped(self, exc: tweepy.HTTPException) -> TransientDeliveryError | PermanentDeliveryError:
        status = exc.response.status
        messages = "; ".join(exc.api_messages) or getattr(exc.response, "reason", "") or ""
        detail = f"x {status}: {messages}"
        if isinstance(exc, tweepy.TooManyRequests):
            reset_at = _header_number(exc.response.headers, "x-rate-limit-reset")
            wait = (
                reset_at - time.time() if reset_at is not None else min(60.0, self._window_seconds)
            )
            return TransientDeliveryError(detail, retry_after=max(1.0, wait))
        if isinstance(exc, tweepy.TwitterServerError) or status >= 500:
            return TransientDeliveryError(detail)
        return PermanentDeliveryError(detail, code=str(status))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
