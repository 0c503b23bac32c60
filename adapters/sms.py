"""The SMS channel: Twilio's Messages API through the real twilio client (async HTTP client),
reached at `channels.sms.api_base` (the simulator in tests and the demo).

Contract:
- Audience: the active subscribers inside the alert's areas (`SubscriberDirectory`); each is
  sent the alert in their own language (`sms_messages`, i.e. `alerts.sms.render_sms` with
  `max_segments` and the `long_messages` policy), marked when it is an exercise or test.
  With a `public_url` the link is the alert's public page, `<public_url>/alerts/<id>`: a
  truncated message ends with "... <link>", a split or whole one with "More: <link>".
- Long messages: "truncate" sends one message; "split" sends the numbered parts of one
  delivery in order, back to back, from the sender the rate limiter chose. A delivery costs
  the segments of all its parts. Its provider_ref (what receipts match) is the first part's
  sid, and only the first part asks for a status callback, so the delivery's receipt is the
  first part's. When a later part fails transiently, the parts already accepted are kept in
  memory (a bounded dict, delivery id -> parts and sids) and the retry sends only the rest;
  its cost still counts every part (the limiter is then merely cautious). After a restart,
  or once the entry is evicted, a retry sends every part again: a subscriber may get a part
  twice, never miss one. The parts of one delivery go out together: a Cancel committed
  meanwhile stops later deliveries, and reaches this subscriber as a correction.
- Senders: each from-number is a sender key with its own token bucket of
  `rate_per_second` segments/s, so several numbers share the load; with a
  `messaging_service_sid` and no numbers, Twilio picks the number and the service is the one
  sender key. A message costs its segment count.
- The (first) message asks for a status callback at `<public_url>/hooks/twilio/status`.
- Errors: Twilio 21610 (opted out) is permanent and opts the subscriber out at once (the
  `on_opt_out` hook persists it); 21211 / 21614 (invalid 'To', not a mobile number) are
  permanent and flag the subscriber at once (the `on_flag(phone, reason)` hook persists it,
  reason e.g. "21614 not a mobile number"), so nothing more is sent to that number until an
  admin fixes the record; other 4xx are permanent; 20429 / HTTP 429 (rate limited, retried
  after 1 s), 5xx, timeouts and connection errors are transient. A hook that fails with
  StoreError is logged: the directory already stops further sends in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from alerts.models import Alert
from alerts.sms import render_sms, sms_cost
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import SmsSettings
from broadcaster.errors import (
    ConfigError,
    PayloadError,
    PermanentDeliveryError,
    StoreError,
    TransientDeliveryError,
)
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert, StoredReply

log = logging.getLogger(__name__)

OPTED_OUT = 21610
# Numbers Twilio refuses for good: the subscriber is flagged with this reason.
FLAG_REASONS = {21211: "21211 invalid 'To' number", 21614: "21614 not a mobile number"}
PERMANENT_CODES = frozenset({OPTED_OUT, *FLAG_REASONS, 21612, 21408, 21602})
RATE_LIMITED = 20429
# Twilio's limit on one message body; a responder's answer is one message.
MAX_ANSWER_CHARS = 1600
_CACHE_SIZE = 256
# Deliveries whose later parts are still owed after a transient failure (see the docstring).
_PARTIAL_SIZE = 1024


def alert_link(public_url: str | None, alert_id: str) -> str | None:
    """The alert's public page, or None without a public URL."""
    return f"{public_url.rstrip('/')}/alerts/{alert_id}" if public_url else None


def sms_messages(
    alert: Alert,
    alert_id: str,
    *,
    language: str | None,
    settings: SmsSettings,
    public_url: str | None,
) -> list[str]:
    """The message(s) one delivery sends, in order: one under "truncate", the numbered parts
    under "split" (one when it fits)."""
    return render_sms(
        alert,
        language=language,
        max_segments=settings.max_segments,
        link=alert_link(public_url, alert_id),
        policy=settings.long_messages,
    )


@dataclass(slots=True)
class _Progress:
    """A split delivery under way: its parts and the sids of those Twilio accepted."""

    parts: tuple[str, ...]
    sids: list[str] = field(default_factory=list)


class SmsChannel:
    def __init__(
        self,
        settings: SmsSettings,
        directory: SubscriberDirectory,
        *,
        public_url: str | None,
        concurrency: int = 32,
        on_opt_out: Callable[[str], Awaitable[None]] | None = None,
        on_flag: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        if not settings.account_sid or settings.auth_token is None:
            raise ConfigError("channels.sms", "account_sid and auth_token are required")
        if not settings.from_numbers and not settings.messaging_service_sid:
            raise ConfigError("channels.sms", "give from_numbers or a messaging_service_sid")
        self._settings = settings
        self._directory = directory
        self._status_callback = (
            f"{public_url.rstrip('/')}/hooks/twilio/status" if public_url else None
        )
        self._public_url = public_url
        self._on_opt_out = on_opt_out
        self._on_flag = on_flag
        self._http = AsyncTwilioHttpClient(timeout=15.0)
        self._client = Client(
            settings.account_sid, settings.auth_token.get_secret_value(), http_client=self._http
        )
        # The client builds every URL from this base; it is how the simulator is reached.
        self._client.api.base_url = settings.api_base.rstrip("/")
        senders = tuple(settings.from_numbers) or (str(settings.messaging_service_sid),)
        self._limits = ChannelLimits(
            senders=senders,
            sender_rate_per_second=settings.rate_per_second,
            concurrency=concurrency,
            safety=settings.rate_margin,
        )
        self._texts: dict[tuple[str, str | None], tuple[str, ...]] = {}
        # Segments of each cached rendering: counting them costs ~9 µs a message otherwise.
        self._costs: dict[tuple[str, ...], int] = {}
        self._partial: dict[int, _Progress] = {}

    def __repr__(self) -> str:
        return f"SmsChannel(account={self._settings.account_sid}, api={self._settings.api_base})"

    @property
    def name(self) -> str:
        return "sms"

    @property
    def directory(self) -> SubscriberDirectory:
        return self._directory

    @property
    def limits(self) -> ChannelLimits:
        return self._limits

    def audience(self, alert: Alert) -> list[str]:
        return self._directory.recipients(alert)

    def exercise_audience(self, alert: Alert) -> list[str]:
        """An exercise or test reaches only the `exercise_group` (none when unset)."""
        group = self._settings.exercise_group
        if group is None:
            return []
        return self._directory.recipients(alert, required_group=group)

    def messages_for(self, stored: StoredAlert, recipient: str) -> tuple[str, ...]:
        """The message(s) for this subscriber, rendered once per alert and language."""
        language = self._directory.language_of(recipient)
        key = (stored.id, language)
        texts = self._texts.get(key)
        if texts is None:
            texts = tuple(
                sms_messages(
                    stored.alert,
                    stored.id,
                    language=language,
                    settings=self._settings,
                    public_url=self._public_url,
                )
            )
            if len(self._texts) >= _CACHE_SIZE:
                del self._texts[next(iter(self._texts))]
            self._texts[key] = texts
        return texts

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        texts = self.messages_for(alert, recipient)
        cost = self._costs.get(texts)
        if cost is None:
            if len(self._costs) >= _CACHE_SIZE:
                del self._costs[next(iter(self._costs))]
            cost = self._costs[texts] = sum(sms_cost(text) for text in texts)
        return cost

    async def send(self, message: Outbound) -> SendReceipt:
        delivery = message.delivery
        recipient = delivery.recipient
        # A retry resumes after the parts already accepted, with the parts it rendered then.
        progress = self._partial.pop(delivery.id, None)
        if progress is None:
            progress = _Progress(self.messages_for(message.alert, recipient))
        base: dict[str, Any] = {"to": recipient}
        if self._settings.from_numbers:
            base["from_"] = message.sender
        else:
            base["messaging_service_sid"] = self._settings.messaging_service_sid
        try:
            for index in range(len(progress.sids), len(progress.parts)):
                fields = {**base, "body": progress.parts[index]}
                if index == 0 and self._status_callback:
                    fields["status_callback"] = self._status_callback
                sent = await self._create(fields, recipient)
                progress.sids.append(sent.sid)
        except BaseException as exc:
            # Transient (or cancelled by the send deadline): the retry sends only the rest.
            if progress.sids and not isinstance(exc, PermanentDeliveryError):
                if len(self._partial) >= _PARTIAL_SIZE:
                    del self._partial[next(iter(self._partial))]
                self._partial[delivery.id] = progress
            raise
        return SendReceipt(provider_ref=progress.sids[0])

    async def answer(self, reply: StoredReply, text: str) -> str:
        """A responder's answer to an SMS reply (the `ReturnChannel` port): one message to
        the sender, from the first from-number (or the messaging service), outside the
        outbox and its rate limits (a person types it). Returns the message sid; errors as
        `send` maps them (an opted-out number is recorded as such)."""
        if not reply.sender:
            raise PayloadError("this reply has no sender", code="no_sender")
        if not 1 <= len(text) <= MAX_ANSWER_CHARS:
            raise PayloadError(
                f"an SMS answer is 1 to {MAX_ANSWER_CHARS} characters", code="invalid_answer"
            )
        fields: dict[str, Any] = {"to": reply.sender, "body": text}
        if self._settings.from_numbers:
            fields["from_"] = self._settings.from_numbers[0]
        else:
            fields["messaging_service_sid"] = self._settings.messaging_service_sid
        sent = await self._create(fields, reply.sender)
        return str(sent.sid)

    async def _create(self, fields: dict[str, Any], recipient: str) -> Any:
        try:
            return await self._client.messages.create_async(**fields)
        except TwilioRestException as exc:
            raise await self._mapped(exc, recipient) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, TwilioException) as exc:
            raise TransientDeliveryError(f"twilio: {type(exc).__name__}") from exc

    async def _mapped(
        self, exc: TwilioRestException, recipient: str
    ) -> TransientDeliveryError | PermanentDeliveryError:
        code = exc.code
        detail = f"twilio {exc.status} code {code}: {exc.msg}"
        # In memory at once (no further send waits for the store), and again once stored:
        # a reload that read the store before the write committed has dropped the first.
        if code == OPTED_OUT:
            self._directory.opt_out(recipient)
            if self._on_opt_out is not None:
                try:
                    await self._on_opt_out(recipient)
                except StoreError as store_error:  # the directory already stops sends
                    log.warning("could not record the opt-out of a subscriber: %s", store_error)
                self._directory.opt_out(recipient)
        reason = FLAG_REASONS.get(code)
        if reason is not None:
            self._directory.flag(recipient)
            if self._on_flag is not None:
                try:
                    await self._on_flag(recipient, reason)
                except StoreError as store_error:  # the directory already stops sends
                    log.warning("could not record the flag of a subscriber: %s", store_error)
                self._directory.flag(recipient)
        if code == RATE_LIMITED or exc.status == 429:
            return TransientDeliveryError(detail, retry_after=1.0)
        if code in PERMANENT_CODES or 400 <= exc.status < 500:
            return PermanentDeliveryError(detail, code=str(code) if code else f"http_{exc.status}")
        return TransientDeliveryError(detail)

    async def close(self) -> None:
        await self._http.close()
