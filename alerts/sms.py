"""SMS rendering: GSM-7 or UCS-2 encoding, segment counting, and each subscriber's messages.

Contract:
- `encoding_of(text)` is "GSM-7" when every character is in the GSM 03.38 default alphabet or
  its extension table, else "UCS-2". A lone ESC character counts as not GSM-7, because in GSM-7
  it is the escape code for the extension table, not a character of its own.
- `septets(text)` counts GSM-7 septets: 1 per basic character, 2 per extension character
  (`^{}\\[~]|€` and form feed: the escape code plus the character). It raises ValueError for
  text that is not GSM-7. `utf16_units(text)` counts UTF-16 code units: 2 for a character
  outside the BMP (most emoji), else 1.
- `segment_info(text)` is what a provider bills. GSM-7: one segment up to 160 septets, else 153
  per segment. UCS-2: one segment up to 70 units, else 67 per segment. (The concatenation
  header takes the rest of each part.) Characters go into segments whole, so an extension
  character's two septets and a surrogate pair never straddle a boundary. That can take one
  more segment than plain division gives. Empty text is 1 segment, because providers bill an
  empty body as one. `sms_cost(text)` is that segment count, which the rate limiter counts.
- `split_segments(text)` cuts text into those parts, as a provider would. Joining the parts
  gives back the text, and there is always one part per billed segment.
- `render_sms(alert, ...)` gives one subscriber's message(s). It is pure and deterministic.
  The lines are: the status marker (for every non-Actual alert), the msgType prefix with the
  headline (or the event when there is no headline), the instruction, "Area: A; B", and
  "More: <link>". Our own fixed text is GSM-7 only, so it never forces UCS-2; only the sender's
  text can. Whitespace runs become one space inside each line, because a tab or no-break space
  is not GSM-7 and would force UCS-2.
  - policy "truncate": one message of at most `max_segments` segments. If it is too long, the
    body is cut at a word end and "... <link>" is added ("…" in UCS-2 text, where it costs 1
    unit). The cut is inside a word only when no word end fits. If even the marker plus the
    link does not fit, the link is left out.
  - policy "split": as many messages as needed, each at most `max_segments` segments and
    numbered "(k/n) ". Each one repeats the marker, and the "More:" line comes last.
  - A message that fits whole is returned alone and unnumbered under either policy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from alerts.models import Alert, Status
from alerts.render import MSG_TYPE_PREFIXES, pick_info, reply_prompt

Encoding = Literal["GSM-7", "UCS-2"]
Policy = Literal["truncate", "split"]

# GSM 03.38 default alphabet in code order 0x00-0x7F, without 0x1B (ESC, the escape code).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each character is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

# render.STATUS_MARKERS uses an em dash, which is not GSM-7. One em dash would make the whole
# message UCS-2 and cut its capacity by more than half, so SMS gets its own ASCII wording.
SMS_STATUS_MARKERS: dict[Status, str] = {
    Status.EXERCISE: "EXERCISE - NOT A REAL ALERT",
    Status.TEST: "TEST - NOT A REAL ALERT",
    Status.SYSTEM: "SYSTEM MESSAGE",
    Status.DRAFT: "DRAFT",
}


@dataclass(frozen=True)
class SegmentInfo:
    """How a provider would send a text: encoding, total units, segments, units per segment."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    per_segment: int  # 160 or 153 for GSM-7, 70 or 67 for UCS-2 (single vs concatenated)


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 basic or extension table, else UCS-2."""
    gsm = all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)
    return "GSM-7" if gsm else "UCS-2"


def septets(text: str) -> int:
    """The GSM-7 length of `text`. Raises ValueError when `text` is not GSM-7."""
    if encoding_of(text) != "GSM-7":
        raise ValueError("text is not GSM-7; count it with utf16_units")
    return sum(2 if c in GSM7_EXTENSION else 1 for c in text)


def utf16_units(text: str) -> int:
    """The UCS-2/UTF-16 length of `text`; characters outside the BMP take a surrogate pair."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def _layout(text: str) -> tuple[SegmentInfo, list[int]]:
    """The segment info and the index where each segment starts."""
    encoding = encoding_of(text)
    if encoding == "GSM-7":
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, multi = GSM7_SINGLE, GSM7_MULTI
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, multi = UCS2_SINGLE, UCS2_MULTI
    units = sum(costs)
    if units <= single:
        return SegmentInfo(encoding, units, 1, single), [0]
    # Place characters one at a time instead of dividing: a 2-unit character that would
    # straddle a boundary moves whole to the next segment, as providers do.
    starts = [0]
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > multi:
            starts.append(index)
            used = 0
        used += cost
    return SegmentInfo(encoding, units, len(starts), multi), starts


def segment_info(text: str) -> SegmentInfo:
    """Encoding, length and segment count of `text` as an SMS (empty text is 1 segment)."""
    return _layout(text)[0]


def split_segments(text: str) -> list[str]:
    """`text` cut into its concatenated-SMS parts. Joining them gives back `text`."""
    starts = _layout(text)[1]
    ends = [*starts[1:], len(text)]
    return [text[start:end] for start, end in zip(starts, ends, strict=True)]


def sms_cost(text: str) -> int:
    """Segments billed for `text`; the unit the rate limiter counts."""
    return segment_info(text).segments


def _squash(text: str | None) -> str:
    # Tabs, no-break spaces and blank lines add nothing in an SMS, and most are not GSM-7.
    return " ".join(text.split()) if text else ""


def _body_lines(alert: Alert, language: str | None) -> list[str]:
    prefix = MSG_TYPE_PREFIXES.get(alert.msg_type, "")
    info = pick_info(alert, language)
    if info is None:
        lines = [f"{prefix}Alert {alert.identifier} from {alert.sender}", _squash(alert.note)]
    else:
        areas = [a for a in (_squash(area.description) for area in info.areas) if a]
        lines = [
            # Keep the prefix when the headline is missing: "CANCELLED" must never be lost.
            prefix + (_squash(info.headline) or _squash(info.event)),
            _squash(info.instruction),
            # Before the area: a cut takes the end first, and the answers matter more.
            _squash(reply_prompt(alert)),
            "Area: " + "; ".join(areas) if areas else "",
        ]
    return [line for line in lines if line]


def _last_fitting(ends: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest end that fits, found by binary search, or None if none fits.

    A longer text never needs fewer segments, so once an end does not fit, no later one
    does. Even if that failed in some odd case, the result is still an end we tested and saw
    fit: `lo` only moves past ends that fit.
    """
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(ends[mid]):
            lo = mid + 1
        else:
            hi = mid
    return ends[lo - 1] if lo else None


def _longest_prefix(text: str, fits: Callable[[str], bool]) -> str:
    """The longest non-empty prefix of `text` that fits, ending at a word end if any word end
    fits, otherwise inside the first word. "" when no prefix fits."""
    word_ends = [m.end() for m in re.finditer(r"\S+", text)]
    end = _last_fitting(word_ends, lambda i: fits(text[:i]))
    if end is None:
        # Only for a first word too long for the message (a pasted URL, say). Cutting it is
        # better than sending nothing.
        end = _last_fitting(range(1, len(text) + 1), lambda i: fits(text[:i]))
    return text[:end] if end is not None else ""


def _truncated(head: str, body: str, link: str | None, max_segments: int) -> str | None:
    def build(kept: str) -> str:
        # "…" is 1 unit in UCS-2 but not GSM-7, so in a GSM-7 text it would force UCS-2.
        gsm = encoding_of(head + kept + (link or "")) == "GSM-7"
        ellipsis = "..." if gsm else "…"
        return head + kept + (f"{ellipsis} {link}" if link else ellipsis)

    def fits(kept: str) -> bool:
        return sms_cost(build(kept)) <= max_segments

    kept = _longest_prefix(body, fits)
    if kept or fits(""):
        return build(kept)
    return None


def _truncate(head: str, body: str, link: str | None, max_segments: int) -> str:
    text = _truncated(head, body, link, max_segments) if link else None
    if text is None:
        # The link alone is too long for the limit. The marker and the alert come first.
        text = _truncated(head, body, None, max_segments)
    if text is None:
        raise ValueError(f"the status marker alone does not fit in {max_segments} segment(s)")
    return text


def _fits_after(header: str, max_segments: int) -> Callable[[str], bool]:
    return lambda part: sms_cost(header + part) <= max_segments


def _pack(head: str, text: str, max_segments: int, total: str) -> list[str]:
    """Cut `text` into parts that fit after their "(k/total) " + head header."""
    parts: list[str] = []
    rest = text
    while rest:
        header = f"({len(parts) + 1}/{total}) {head}"
        part = _longest_prefix(rest, _fits_after(header, max_segments))
        if not part:
            raise ValueError(f"a numbered header alone does not fit in {max_segments} segment(s)")
        parts.append(part)
        rest = rest[len(part) :].lstrip()
    return parts


def _split(head: str, text: str, max_segments: int) -> list[str]:
    # The header's length depends on the message count, which is known only after packing.
    # So pack with a placeholder count of each digit width until the count fits that width.
    # Every header then has the same length as the one the packing used.
    for width in itertools.count(1):
        parts = _pack(head, text, max_segments, "9" * width)
        if len(parts) < 10**width:
            total = len(parts)
            return [f"({k}/{total}) {head}{part}" for k, part in enumerate(parts, start=1)]
    raise AssertionError("unreachable: itertools.count never ends")  # pragma: no cover


def render_sms(
    alert: Alert,
    *,
    language: str | None,
    max_segments: int,
    link: str | None,
    policy: Policy = "truncate",
) -> list[str]:
    """The SMS message(s) for one subscriber reading `language`, each at most `max_segments`
    segments: one message under "truncate", one or more numbered ones under "split"."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if policy not in ("truncate", "split"):
        raise ValueError(f"unknown policy {policy!r}; use 'truncate' or 'split'")
    marker = SMS_STATUS_MARKERS.get(alert.status, "")
    # The marker is kept out of the body so that no cut can remove it: an exercise must never
    # read as a live alert.
    head = f"{marker}\n" if marker else ""
    body = "\n".join(_body_lines(alert, language))
    link = _squash(link) or None
    more = f"More: {link}" if link else ""
    whole = "\n".join(part for part in (marker, body, more) if part)
    if sms_cost(whole) <= max_segments:
        return [whole]
    if policy == "truncate":
        return [_truncate(head, body, link, max_segments)]
    return _split(head, "\n".join(part for part in (body, more) if part), max_segments)


__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "SMS_STATUS_MARKERS",
    "SegmentInfo",
    "encoding_of",
    "render_sms",
    "segment_info",
    "septets",
    "sms_cost",
    "split_segments",
    "utf16_units",
]
