"""The SMS channel: Twilio's Messages API through the real twilio client (async HTTP client),
reached at `channels.sms.api_base` (the simulator in tests and the demo).

Contract:
- Audience: the active subscribers inside the alert's areas (`SubscriberDirectory`); each is
  sent the alert in their own language (`alerts.sms.render_sms`, truncated to
  `max_segments`), marked when it is an exercise or test.
- Senders: each from-number is a sender key with its own token bucket of
  `rate_per_second` segments/s, so several numbers share the load; with a
  `messaging_service_sid` and no numbers, Twilio picks the number and the service is the one
  sender key. A message costs its segment count.
- Each message asks for a status callback at `<public_url>/hooks/twilio/status`.
- Errors: Twilio 21610 (opted out) is permanent and opts the subscriber out at once (the
  `on_opt_out` hook persists it); 21211 / 21614 (invalid, not mobile) and other 4xx are
  permanent; 20429 / HTTP 429 (rate limited, retried after 1 s), 5xx, timeouts and connection
  errors are transient.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
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
    PermanentDeliveryError,
    StoreError,
    TransientDeliveryError,
)
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert

log = logging.getLogger(__name__)

OPTED_OUT = 21610
PERMANENT_CODES = frozenset({OPTED_OUT, 21211, 21614, 21612, 21408, 21602})
RATE_LIMITED = 20429
_CACHE_SIZE = 256


class SmsChannel:
    def __init__(
        self,
        settings: SmsSettings,
        directory: SubscriberDirectory,
        *,
        public_url: str | None,
        concurrency: int = 32,
        on_opt_out: Callable[[str], Awaitable[None]] | None = None,
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
        self._on_opt_out = on_opt_out
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
        self._texts: dict[tuple[str, str | None], str] = {}

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

    def text_for(self, stored: StoredAlert, recipient: str) -> str:
        """The message for this subscriber, rendered once per alert and language."""
        language = self._directory.language_of(recipient)
        key = (stored.id, language)
        text = self._texts.get(key)
        if text is None:
            text = render_sms(
                stored.alert,
                language=language,
                max_segments=self._settings.max_segments,
                link=None,
            )[0]
            if len(self._texts) >= _CACHE_SIZE:
                del self._texts[next(iter(self._texts))]
            self._texts[key] = text
        return text

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return sms_cost(self.text_for(alert, recipient))

    async def send(self, message: Outbound) -> SendReceipt:
        recipient = message.delivery.recipient
        fields: dict[str, Any] = {"to": recipient, "body": self.text_for(message.alert, recipient)}
        if self._settings.from_numbers:
            fields["from_"] = message.sender
        else:
            fields["messaging_service_sid"] = self._settings.messaging_service_sid
        if self._status_callback:
            fields["status_callback"] = self._status_callback
        try:
            sent = await self._client.messages.create_async(**fields)
        except TwilioRestException as exc:
            raise await self._mapped(exc, recipient) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, TwilioException) as exc:
            raise TransientDeliveryError(f"twilio: {type(exc).__name__}") from exc
        return SendReceipt(provider_ref=sent.sid)

    async def _mapped(
        self, exc: TwilioRestException, recipient: str
    ) -> TransientDeliveryError | PermanentDeliveryError:
        code = exc.code
        detail = f"twilio {exc.status} code {code}: {exc.msg}"
        if code == OPTED_OUT:
            self._directory.opt_out(recipient)
            if self._on_opt_out is not None:
                try:
                    await self._on_opt_out(recipient)
                except StoreError as store_error:  # the directory already stops sends
                    log.warning("could not record the opt-out of a subscriber: %s", store_error)
        if code == RATE_LIMITED or exc.status == 429:
            return TransientDeliveryError(detail, retry_after=1.0)
        if code in PERMANENT_CODES or 400 <= exc.status < 500:
            return PermanentDeliveryError(detail, code=str(code) if code else f"http_{exc.status}")
        return TransientDeliveryError(detail)

    async def close(self) -> None:
        await self._http.close()
