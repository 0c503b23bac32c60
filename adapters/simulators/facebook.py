"""A Facebook Graph API stand-in on loopback (Page feed posts), for tests and the demo.

Route: `POST /{version}/{page_id}/feed` with form (or query) fields `message` and
`access_token`, answered in this order:
1. Version and Page: a version not like `v21.0` -> 400 code 2500 "Unknown path components";
   another Page id -> 400 code 100 / subcode 33 "Object ... does not exist".
2. Token: none -> 400 code 2500 "An active access token must be used ..."; a wrong one ->
   400 code 190 (OAuthException) "Malformed access token <token>" — Graph does quote a
   malformed token back, which is why the channel redacts provider messages.
3. Rate limit: `post_limit` posts per fixed `window_seconds` window. Past it, Graph's Page
   throttle: code 32 "(#32) Page request limit reached" (OAuthException) with HTTP
   `rate_limit_status` (400, as Graph answers its throttles; set 429 to test that path), and
   `X-Business-Use-Case-Usage` / `X-Page-Usage` saying call_count over 100 % and
   `estimated_time_to_regain_access` in whole minutes (at least 1) until the window ends.
   Every answer carries those headers with the window's usage in percent.
4. Faults queued by `fail_next(n, code=..., status=...)`: Graph-shaped errors (code 1/2 as
   HTTP 500/503 with `is_transient`, rate-limit codes with `rate_limit_status` and no regain
   estimate, 10/200 as 403, anything else 400).
5. The post: no message -> 400 code 100 "(#100) Missing message or attachment"; the same
   message as the Page's previous post -> 400 code 506 "Duplicate status message"; else 200
   `{"id": "<page_id>_<post id>"}`, recorded in `posts` (without the token).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections import deque
from typing import Any

from aiohttp import web

from adapters.simulators.loopback import LoopbackServer

PAGE_ID = "102030405060708"
PAGE_TOKEN = "EAAsimulatedPageToken0123456789"  # noqa: S105 - the simulator's own fixture
FIRST_POST_ID = 900_000_000_000_001
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001})
_VERSION = re.compile(r"^v\d+\.\d+$")
COUNTERS = ("posted", "rate_limited", "failed", "unauthorized", "invalid", "duplicate")

MESSAGES = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    100: "(#100) Invalid parameter",
    190: "Error validating access token: The session has been invalidated.",
    200: "(#200) The user hasn't authorized the application to perform this action",
    368: "It looks like you were misusing this feature by going too fast.",
    506: "Duplicate status message",
    613: "Calls to this api have exceeded the rate limit.",
}


def graph_error(
    code: int, message: str, *, subcode: int | None = None, transient: bool = False
) -> dict[str, Any]:
    """Graph's error body."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException" if code != 1 else "GraphMethodException",
        "code": code,
        "fbtrace_id": "A" + secrets.token_hex(10),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return {"error": error}


class FacebookSimulator(LoopbackServer):
    """An aiohttp server on 127.0.0.1:<free port> that answers like Graph's Page feed."""

    def __init__(
        self,
        *,
        page_id: str = PAGE_ID,
        page_token: str = PAGE_TOKEN,
        post_limit: int = 100,
        window_seconds: float = 3600.0,
        rate_limit_status: int = 400,
        business_id: str = "1122334455",
        port: int = 0,
    ) -> None:
        self.page_id = page_id
        self.page_token = page_token
        self.post_limit = post_limit
        self.window_seconds = window_seconds
        self.rate_limit_status = rate_limit_status
        self.business_id = business_id
        self.posts: list[dict[str, Any]] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._forced: deque[tuple[int, int | None]] = deque()
        self._window_started = -math.inf
        self._window_used = 0
        self._next_id = FIRST_POST_ID
        super().__init__(port)

    def __repr__(self) -> str:
        url = self.url if self._port else None
        return f"FacebookSimulator(url={url!r}, page_id={self.page_id!r}, counts={self.counts!r})"

    def fail_next(self, n: int, code: int = 2, status: int | None = None) -> None:
        """Answer the next `n` authorized, in-limit posts with Graph error `code` (HTTP
        `status`, or the status Graph uses for that code)."""
        self._forced.extend([(code, status)] * n)

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{page_id}/feed", self._feed)

    # --- helpers -------------------------------------------------------------------------

    def _usage_headers(self, now: float, *, throttled: bool) -> dict[str, str]:
        if now - self._window_started >= self.window_seconds:
            self._window_started, self._window_used = now, 0
        percent = min(100, math.ceil(100 * self._window_used / max(self.post_limit, 1)))
        left = self._window_started + self.window_seconds - now
        regain = max(1, math.ceil(left / 60)) if throttled else 0
        usage = {
            "call_count": 101 if throttled else percent,
            "total_cputime": 1,
            "total_time": 1,
        }
        entry = {"type": "pages", **usage, "estimated_time_to_regain_access": regain}
        business = {self.business_id: [entry]}
        page = dict(usage, estimated_time_to_regain_access=regain) if throttled else usage
        return {
            "X-Business-Use-Case-Usage": json.dumps(business),
            "X-Page-Usage": json.dumps(page),
            "x-fb-rev": "1000000",
        }

    @staticmethod
    def _answer(body: dict[str, Any], status: int, headers: dict[str, str]) -> web.Response:
        return web.Response(
            text=json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _error(
        self,
        code: int,
        headers: dict[str, str],
        *,
        status: int | None = None,
        message: str | None = None,
        subcode: int | None = None,
    ) -> web.Response:
        if status is None:
            if code in RATE_LIMIT_CODES:
                status = self.rate_limit_status
            elif code == 1:
                status = 500
            elif code == 2:
                status = 503
            elif code in (10, 200):
                status = 403
            else:
                status = 400
        if code in RATE_LIMIT_CODES:
            self.counts["rate_limited"] += 1
        elif code in (1, 2) or status >= 500:
            self.counts["failed"] += 1
        elif code == 190:
            self.counts["unauthorized"] += 1
        else:
            self.counts["invalid"] += 1
        body = graph_error(
            code,
            message if message is not None else MESSAGES.get(code, f"(#{code}) Error"),
            subcode=subcode,
            transient=code in (1, 2),
        )
        return self._answer(body, status, headers)

    # --- the endpoint --------------------------------------------------------------------

    async def _feed(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        headers = self._usage_headers(now, throttled=False)
        form = await request.post()
        fields: dict[str, str] = {k: v for k, v in request.query.items()}
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        if not _VERSION.match(request.match_info["version"]):
            message = f"Unknown path components: /{request.match_info['version']}"
            return self._error(2500, headers, message=message)
        if request.match_info["page_id"] != self.page_id:
            message = (
                f"Unsupported post request. Object with ID '{request.match_info['page_id']}' "
                "does not exist, cannot be loaded due to missing permissions, or does not "
                "support this operation."
            )
            return self._error(100, headers, message=message, subcode=33)
        token = fields.pop("access_token", "")
        if not token:
            message = "An active access token must be used to query information about the page."
            return self._error(2500, headers, message=message)
        if not secrets.compare_digest(token.encode(), self.page_token.encode()):
            return self._error(190, headers, message=f"Malformed access token {token}")
        if self._window_used >= self.post_limit:
            return self._error(32, self._usage_headers(now, throttled=True))
        self._window_used += 1
        headers = self._usage_headers(now, throttled=False)
        if self._forced:
            code, status = self._forced.popleft()
            throttled = code in RATE_LIMIT_CODES
            # A queued throttle says nothing about when it ends: the channel's default wait.
            return self._error(code, headers if not throttled else {}, status=status)
        message = fields.get("message", "").strip()
        if not message:
            return self._error(100, headers, message="(#100) Missing message or attachment")
        if self.posts and self.posts[-1]["message"] == fields["message"]:
            self.counts["duplicate"] += 1
            return self._answer(graph_error(506, MESSAGES[506]), 400, headers)
        post_id = f"{self.page_id}_{self._next_id}"
        self._next_id += 1
        self.posts.append(
            {"id": post_id, "message": fields["message"], "fields": fields, "at": now}
        )
        self.counts["posted"] += 1
        return self._answer({"id": post_id}, 200, headers)


__all__ = ["PAGE_ID", "PAGE_TOKEN", "FacebookSimulator", "graph_error"]
