"""The text of a Facebook Page post for an alert.

Contract:
- `render_post(alert, link=...)` is pure and deterministic (the same alert renders the same
  post), one part per line, empty parts skipped:
    1. the status marker of a non-Actual alert ("EXERCISE — NOT A REAL ALERT" ...), first, as on
       every other channel, so a drill can never be read as a live alert;
    2. the headline, prefixed "UPDATE: " / "CANCELLED: " for an Update / Cancel (an alert
       without a headline carries the prefix on its event line instead);
    3. severity and event ("Severe — Gas leak"; an Unknown severity is left out);
    4. "What to do: <instruction>" — before the description: it is what a reader must act on;
    5. the description, cut at a word to `MAX_DESCRIPTION` characters with "…";
    6. "Area: A; B"; 7. "Expires: <CAP time>"; 8. "More info: <link>" when a link is given.
- An alert without info blocks (a CAP Cancel may have none) renders its marker, then
  "<prefix>Alert <identifier> from <sender>", its note, and the link.
- The whole post is at most `MAX_POST` characters (Facebook allows 63,206; a post that long is
  not read). Only the description and then the instruction are ever cut, never the marker,
  headline or link.
"""

from __future__ import annotations

import unicodedata

from alerts.models import Alert, Info, Severity, format_cap_time
from alerts.render import MSG_TYPE_PREFIXES, STATUS_MARKERS, pick_info

MAX_DESCRIPTION = 1000
MAX_POST = 3000
ELLIPSIS = "…"


def _clean(text: str | None) -> str:
    return unicodedata.normalize("NFC", text.strip()) if text else ""


def trim_words(text: str, limit: int) -> str:
    """`text` when it has at most `limit` characters, else cut at the last space that leaves
    room for "…" (mid-word only when one word is longer than the limit)."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    head = text[: limit - len(ELLIPSIS)]
    cut = head.rfind(" ")
    if cut > limit // 2:
        head = head[:cut]
    return head.rstrip(" ,;:.-—") + ELLIPSIS


def _event_line(info: Info) -> str:
    event = _clean(info.event)
    if info.severity is Severity.UNKNOWN:
        return event
    return f"{info.severity.value} — {event}" if event else info.severity.value


def render_post(alert: Alert, *, link: str | None, language: str | None = None) -> str:
    """The post for `alert` (see the module docstring)."""
    prefix = MSG_TYPE_PREFIXES.get(alert.msg_type, "")
    marker = STATUS_MARKERS.get(alert.status, "")
    tail = f"More info: {link.strip()}" if link and link.strip() else ""
    info = pick_info(alert, language)
    if info is None:
        head = [marker, f"{prefix}Alert {alert.identifier} from {alert.sender}"]
        return _join([*head, trim_words(_clean(alert.note), MAX_DESCRIPTION), tail])
    headline = _clean(info.headline)
    event = _event_line(info)
    head = [marker, *([prefix + headline, event] if headline else [prefix + event])]
    instruction = _clean(info.instruction)
    description = trim_words(_clean(info.description), MAX_DESCRIPTION)
    areas = "; ".join(a for a in (_clean(area.description) for area in info.areas) if a)
    rest = [
        f"Area: {areas}" if areas else "",
        f"Expires: {format_cap_time(info.expires)}" if info.expires is not None else "",
        tail,
    ]
    fixed = len(_join([*head, *rest]))
    # What is left for instruction and description (each with its newline).
    room = MAX_POST - fixed - 2
    what_to_do = f"What to do: {instruction}" if instruction else ""
    if len(what_to_do) + len(description) > room:
        description = trim_words(description, max(room - len(what_to_do), 0))
        what_to_do = trim_words(what_to_do, room - len(description))
    return _join([*head, what_to_do, description, *rest])


def _join(lines: list[str]) -> str:
    return "\n".join(line for line in lines if line)


__all__ = ["MAX_DESCRIPTION", "MAX_POST", "render_post", "trim_words"]
