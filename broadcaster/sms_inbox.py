"""Inbound SMS: subscription keywords, and everything else as a reply.

Contract of `SmsInbox.receive(message)`, which returns the text to answer with (None: no
answer). The body is trimmed and compared without regard to case; a keyword is the whole
body, except JOIN, which takes the rest of it as an argument.
- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: the number is opted out (store, then every
  `opt_changed` listener, which takes it out of the SMS audience at once). A number we do not
  know is recorded as an opted-out subscriber with no area, so no later import or admin
  update can start texting it. On long codes Twilio also handles these words itself (it
  blocks further messages and sends its own confirmation); we record them anyway, so our
  audience agrees with Twilio's block list and a send is never wasted on a 21610.
- START, UNSTOP, YES: a known number is opted back in (store, then listeners); an unknown one
  is told how to JOIN.
- HELP, INFO: what we are and the keywords.
- JOIN <postcode or place>: subscribes the number (or updates its area) with that area code
  and opts it in (a JOIN is an explicit request), keeping a known subscriber's position,
  language and groups; then every `subscribers_changed` listener runs (the audience index
  reloads). A UK postcode becomes its outward code, upper case ("m1 1ae" -> "M1"): alerts
  target districts by geocode, and a full postcode (a handful of homes) is more than we need
  to keep about someone. Any other text is kept as the place name, whitespace collapsed,
  at most 40 characters; alerts reach it through a geocode of the same value (geocodes match
  area codes without regard to case).
- Anything else is a reply: ingested (source "sms", external id the MessageSid) and not
  answered, since an automatic answer to a report would read as a human acknowledgement.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from alerts.models import NOT_XML_CODEPOINTS
from broadcaster.ports import Reply, ReplySource, Store, Subscriber
from broadcaster.replies import ReplyService

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
MAX_AREA_CHARS = 40

# Dropped from a JOIN's area: what XML cannot carry (the area is echoed in TwiML), and DEL
# and the C1 controls.
_CONTROL = dict.fromkeys([*NOT_XML_CODEPOINTS, *range(0x7F, 0xA0)])
# Outward code (area + district, e.g. "M1", "SW1A", "EC1V") and, optionally, the inward code.
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)(?:\s*([0-9][A-Z]{2}))?$")
_JOIN = re.compile(r"^JOIN(?:\s+(.*))?$", re.IGNORECASE | re.DOTALL)

# One segment (160 GSM-7 characters): a HELP answer should cost one message.
HELP_TEXT = (
    "Emergency alerts. Text JOIN and your postcode (e.g. JOIN M1 1AE) to subscribe, STOP to "
    "stop, START to restart. Replies reach responders. In danger call 999."
)
STOP_TEXT = "You will get no more alerts from this number. Text START to get them again."
START_TEXT = "You will get alerts again. Text STOP to stop them."
UNKNOWN_START_TEXT = "Text JOIN and your postcode (e.g. JOIN M1 1AE) to get alerts for your area."
JOIN_USAGE_TEXT = "To subscribe, text JOIN and your postcode or town, e.g. JOIN M1 1AE."


def joined_text(area: str) -> str:
    return f"You will get alerts for {area}. Text STOP to stop them."


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    JOIN = "join"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SmsCommand:
    keyword: Keyword
    argument: str = ""


def parse_sms(body: str) -> SmsCommand:
    """The keyword a message body is (see the module contract), else Keyword.NONE."""
    text = body.strip()
    word = text.upper()
    if word in STOP_WORDS:
        return SmsCommand(Keyword.STOP)
    if word in START_WORDS:
        return SmsCommand(Keyword.START)
    if word in HELP_WORDS:
        return SmsCommand(Keyword.HELP)
    join = _JOIN.match(text)
    if join:
        return SmsCommand(Keyword.JOIN, (join.group(1) or "").strip())
    return SmsCommand(Keyword.NONE, text)


def normalise_area(text: str) -> str | None:
    """A UK postcode's outward code ("M1 1AE" -> "M1"), else the place name (control
    characters dropped, whitespace collapsed, at most 40 characters); None for empty text.
    The area is echoed in the TwiML answer, which must stay well-formed XML."""
    collapsed = " ".join(text.translate(_CONTROL).split())
    if not collapsed:
        return None
    postcode = _POSTCODE.match(collapsed.upper())
    if postcode:
        return postcode.group(1)
    return collapsed[:MAX_AREA_CHARS].rstrip()


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One message Twilio handed us."""

    sid: str
    phone: str
    body: str
    received_at: datetime
    media_url: str | None = None


OptListener = Callable[[str, bool], Awaitable[object]]
ChangeListener = Callable[[], Awaitable[object]]


class SmsInbox:
    def __init__(
        self,
        store: Store,
        replies: ReplyService,
        *,
        opt_changed: Sequence[OptListener] = (),
        subscribers_changed: Sequence[ChangeListener] = (),
    ) -> None:
        self._store = store
        self._replies = replies
        # Held, not copied: listeners registered after construction are called too.
        self._opt_changed = opt_changed
        self._subscribers_changed = subscribers_changed

    async def receive(self, message: InboundSms) -> str | None:
        command = parse_sms(message.body)
        phone = message.phone
        if command.keyword is Keyword.STOP:
            await self._opt_out(phone, message.received_at)
            return STOP_TEXT
        if command.keyword is Keyword.START:
            if not await self._store.set_opted_out(phone, None):
                return UNKNOWN_START_TEXT
            await self._tell(phone, opted_out=False)
            return START_TEXT
        if command.keyword is Keyword.HELP:
            return HELP_TEXT
        if command.keyword is Keyword.JOIN:
            area = normalise_area(command.argument)
            if area is None:
                return JOIN_USAGE_TEXT
            await self._join(phone, area, message.received_at)
            return joined_text(area)
        await self._replies.ingest(
            Reply(
                source=ReplySource.SMS,
                external_id=message.sid,
                text=message.body.strip(),
                received_at=message.received_at,
                sender=phone,
                media_url=message.media_url,
            )
        )
        return None

    async def _opt_out(self, phone: str, at: datetime) -> None:
        if not await self._store.set_opted_out(phone, at):
            await self._store.upsert_subscribers([Subscriber(phone, opted_out_at=at)], at)
        await self._tell(phone, opted_out=True)

    async def _join(self, phone: str, area: str, at: datetime) -> None:
        known = await self._store.get_subscriber(phone)
        if known is None:
            subscriber = Subscriber(phone, area_code=area)
        else:
            subscriber = Subscriber(
                phone,
                lat=known.lat,
                lon=known.lon,
                area_code=area,
                language=known.language,
                groups=known.groups,
            )
        await self._store.upsert_subscribers([subscriber], at)
        await self._store.set_opted_out(phone, None)
        for listener in self._subscribers_changed:
            await listener()

    async def _tell(self, phone: str, *, opted_out: bool) -> None:
        for listener in self._opt_changed:
            await listener(phone, opted_out)
