"""A Twilio Programmable Messaging stand-in on loopback, for tests and benchmarks.

It speaks the real wire format of the 2010-04-01 REST API closely enough that the real
`twilio.rest.Client` (with `AsyncTwilioHttpClient`) can be pointed at it by setting
`client.api.base_url = simulator.url`.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, in this order:
1. HTTP Basic auth must be `account_sid:auth_token` and the path's AccountSid that account:
   else 401, code 20003.
2. Statuses queued by `fail_next(n, status)`, then a seeded draw with `fail_ratio`: 500 (code
   20500). Neither is recorded.
3. Validation, 400: To missing (21604) or not E.164 (21211), From and MessagingServiceSid both
   missing (21603), Body missing (21602) or over 1600 characters (21617), To in `opted_out`
   (21610) or in `not_mobile` (21614).
4. Per sender (From, else MessagingServiceSid), at most `mps` segments in any rolling second:
   else 429, code 20429. A message of more segments than `mps` passes only when the sender's
   window is empty, so it is delayed, never starved.
5. Accepted: 201 with the Message resource (status "queued", or "accepted" when sent through a
   messaging service without From), appended to `messages`.

Then, in the background, every accepted message moves on: after `callback_delay` to "sent",
after another `callback_delay` to "delivered" (or "undelivered" with ErrorCode 30003 when To is
in `undeliverable`). With a StatusCallback, each step is POSTed there as Twilio does it: form
fields MessageSid, MessageStatus, AccountSid, From, To, ApiVersion, SmsSid, SmsStatus (ErrorCode
on failure), signed in `X-Twilio-Signature` by twilio's own `RequestValidator`. Each attempt
is appended to `callbacks`. `GET .../Messages/{Sid}.json` answers the resource as it stands.

`send_inbound(url, from_, body)` plays a person texting one of our numbers: it POSTs the
form Twilio sends to a number's incoming-message webhook (MessageSid, SmsSid, SmsMessageSid,
AccountSid, From, To, Body, NumMedia, NumSegments, ApiVersion, and MediaUrl<i> /
MediaContentType<i> per media URL), signed in `X-Twilio-Signature` with the auth token, and
returns the status and body of the answer (TwiML); each is appended to `inbound`.

Same seed, same requests in the same order -> same sids and same decisions.

The wire format and the decisions (validation, segments, rate window) are pure functions in
`twilio_messages`, re-exported here; this module holds the server, its state and clocks.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import random
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from adapters.simulators.loopback import LoopbackServer
from adapters.simulators.twilio_messages import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    Callback,
    Inbound,
    SenderWindow,
    advance,
    error_body,
    inbound_form,
    message_resource,
    segments,
    send_refusal,
    status_callback_form,
)

COUNTERS = ("accepted", "rejected", "rate_limited", "failed_5xx", "unauthorized")


class TwilioSimulator(LoopbackServer):
    """An aiohttp server on 127.0.0.1:<free port> that answers like Twilio's Messages API."""

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        mps: float | None = None,
        fail_ratio: float = 0.0,
        opted_out: Iterable[str] = (),
        not_mobile: Iterable[str] = (),
        undeliverable: Iterable[str] = (),
        callback_delay: float = 0.0,
        seed: int = 1,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.mps = mps
        self.fail_ratio = fail_ratio
        self.opted_out = set(opted_out)
        self.not_mobile = set(not_mobile)
        self.undeliverable = set(undeliverable)
        self.callback_delay = callback_delay
        self.validator = RequestValidator(auth_token)
        # Two generators: how many sids were drawn does not shift the fault decisions.
        self._random = random.Random(seed)  # noqa: S311 - simulated faults, not secrets
        self._sids = random.Random(f"sids-{seed}")  # noqa: S311 - reproducible ids
        self._forced: deque[int] = deque()
        self._senders: dict[str, SenderWindow] = {}
        self._resources: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages: list[dict[str, Any]] = []
        self.callbacks: list[Callback] = []
        self.inbound: list[Inbound] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        url = self.url if self._port else None
        return f"TwilioSimulator(url={url!r}, counts={self.counts!r})"

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next `n` authenticated sends with `status` (Twilio error JSON)."""
        self._forced.extend([status] * n)

    def resource(self, sid: str) -> dict[str, Any]:
        """The Message resource as it stands now (status moves on as callbacks go out)."""
        return self._resources[sid]

    def _add_routes(self, app: web.Application) -> None:
        base = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        app.router.add_post(f"{base}.json", self._create)
        app.router.add_get(f"{base}/{{sid}}.json", self._fetch)

    async def start(self) -> None:
        await super().start()
        self._session = aiohttp.ClientSession()  # posts the status callbacks

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().stop()

    async def send_inbound(
        self,
        to_url: str,
        from_: str,
        body: str,
        *,
        to: str = "+15005550001",
        media_urls: Iterable[str] = (),
        signature: str | None = None,
    ) -> tuple[int, str]:
        """POST an incoming message to `to_url` as Twilio does; returns (status, answer).
        `signature` replaces the correct one (to test a forgery)."""
        sid = f"SM{self._sids.getrandbits(128):032x}"
        params = inbound_form(
            account_sid=self.account_sid,
            sid=sid,
            from_=from_,
            to=to,
            body=body,
            media=list(media_urls),
        )
        if signature is None:
            signature = self.validator.compute_signature(to_url, params)
        assert self._session is not None, "start the simulator first"
        async with self._session.post(
            to_url,
            data=params,
            headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as answer:
            status, text = answer.status, await answer.text()
        self.inbound.append(Inbound(to_url, params, status, text))
        return status, text

    async def drain(self) -> None:
        """Wait until every pending status change and callback is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- HTTP handlers -------------------------------------------------------------------

    def _error(self, code: int, message: str, status: int) -> web.Response:
        if status == 401:
            self._count("unauthorized")
            return web.json_response(
                error_body(code, message, status),
                status=status,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if status == 429:
            self._count("rate_limited")
        elif status >= 500:
            self._count("failed_5xx")
        else:
            self._count("rejected")
        return web.json_response(error_body(code, message, status), status=status)

    def _authorized(self, request: web.Request) -> bool:
        # Decoded by hand: aiohttp >= 3.14 deprecates BasicAuth.decode.
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            hmac.compare_digest(login.encode(), self.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.auth_token.encode())
            and request.match_info["account"] == self.account_sid
        )

    def _unauthorized(self) -> web.Response:
        return self._error(20003, "Authenticate", 401)

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        form = await request.post()
        if self._forced:
            status = self._forced.popleft()
            return self._error(20000 + status, "Forced failure", status)
        if self._random.random() < self.fail_ratio:
            return self._error(20500, "Internal Server Error", 500)
        to = str(form.get("To", "")).strip()
        sender = str(form.get("From", "")).strip() or None
        service = str(form.get("MessagingServiceSid", "")).strip() or None
        body = str(form.get("Body", ""))
        callback_url = str(form.get("StatusCallback", "")).strip() or None
        refusal = send_refusal(
            to, sender, service, body, opted_out=self.opted_out, not_mobile=self.not_mobile
        )
        if refusal is not None:
            code, message = refusal
            return self._error(code, message, 400)
        parts = segments(body)
        now = time.monotonic()
        if not self._admit(sender or str(service), parts, now):
            return self._error(20429, "Too Many Requests", 429)
        resource = self._new_resource(to, sender, service, body, parts)
        self._resources[resource["sid"]] = resource
        self.messages.append(
            {
                "sid": resource["sid"],
                "to": to,
                "from": sender,
                "messaging_service_sid": service,
                "body": body,
                "num_segments": parts,
                "status_callback": callback_url,
                "at": now,
            }
        )
        self._count("accepted")
        task = asyncio.create_task(self._progress(resource, callback_url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(resource, status=201)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        resource = self._resources.get(request.match_info["sid"])
        if resource is None:
            return self._error(20404, f"The requested resource {request.path} was not found", 404)
        return web.json_response(resource)

    # --- behaviour -----------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _admit(self, sender: str, parts: int, now: float) -> bool:
        """Take `parts` segments from the sender's rolling second, if they fit."""
        if self.mps is None:
            return True
        return self._senders.setdefault(sender, SenderWindow()).admit(parts, now, self.mps)

    def _new_resource(
        self, to: str, sender: str | None, service: str | None, body: str, parts: int
    ) -> dict[str, Any]:
        return message_resource(
            account_sid=self.account_sid,
            sid=f"SM{self._sids.getrandbits(128):032x}",
            to=to,
            sender=sender,
            service=service,
            body=body,
            parts=parts,
            now=datetime.now(UTC),
        )

    async def _progress(self, resource: dict[str, Any], callback_url: str | None) -> None:
        failed = resource["to"] in self.undeliverable
        for status in ("sent", "undelivered" if failed else "delivered"):
            await asyncio.sleep(self.callback_delay)
            advance(resource, status, datetime.now(UTC))
            if callback_url is not None:
                await self._callback(callback_url, resource)

    async def _callback(self, url: str, resource: dict[str, Any]) -> None:
        params = status_callback_form(resource)
        signature = self.validator.compute_signature(url, params)
        status: int | None = None
        assert self._session is not None
        try:
            async with self._session.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = None  # Twilio does not retry status callbacks by default
        self.callbacks.append(Callback(url, params, signature, status, time.monotonic()))


__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "Callback",
    "Inbound",
    "TwilioSimulator",
    "error_body",
    "segments",
]
