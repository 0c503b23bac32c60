"""Plain-text rendering of an alert, for channels without a renderer of their own.

Contract:
- `render_text(alert, language=...)` is a pure, deterministic function of its arguments: the
  same alert always renders to the same text (receivers de-duplicate and tests compare on it).
- The text is one part per line, empty parts skipped, in this order:
    1. a status marker for every non-Actual alert ("TEST — NOT A REAL ALERT" ...), so that an
       exercise can never be mistaken for a live alert;
    2. severity and event ("Extreme — Tornado Warning"; an Unknown severity is left out);
    3. the headline, prefixed by the message type for Update/Cancel/Error ("UPDATE: ...");
       without a headline the prefix goes on the severity/event line instead, so it is never
       lost;
    4. description; 5. "What to do: <instruction>"; 6. "Area: A; B";
    7. "Expires: <CAP time>"; 8. "More info: <web>".
- An alert without info blocks renders its marker, then "<prefix>Alert <identifier> from
  <sender>", then its `note` when it has one.
- `pick_info(alert, language)` chooses the info block: exact language match (case-insensitive,
  as language tags are), then the same primary subtag ("es" matches "es-MX"), else the first
  block; None only when the alert has no info blocks.
"""

from __future__ import annotations

from alerts.models import Alert, Info, MsgType, Severity, Status, format_cap_time

# Every non-Actual status is marked. Actual is absent on purpose: live alerts carry no marker.
STATUS_MARKERS: dict[Status, str] = {
    Status.EXERCISE: "EXERCISE — NOT A REAL ALERT",
    Status.TEST: "TEST — NOT A REAL ALERT",
    Status.SYSTEM: "SYSTEM MESSAGE",
    Status.DRAFT: "DRAFT",
}

# Alert and Ack read as themselves; the others change how a reader must treat the message.
MSG_TYPE_PREFIXES: dict[MsgType, str] = {
    MsgType.UPDATE: "UPDATE: ",
    MsgType.CANCEL: "CANCELLED: ",
    MsgType.ERROR: "ERROR: ",
}


def reply_prompt(alert: Alert) -> str:
    """How to answer an alert that offers responses: "Reply 1 SAFE, 2 NEED HELP"; "" when
    it offers none."""
    options = alert.responses
    if not options:
        return ""
    return "Reply " + ", ".join(f"{key} {label}" for key, label in options)


def _primary_subtag(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def pick_info(alert: Alert, language: str | None) -> Info | None:
    """The info block to show a reader of `language`: exact tag, then primary subtag, then
    the first block. None when the alert has no info blocks."""
    if not alert.infos:
        return None
    if language:
        wanted = language.strip().lower()
        for info in alert.infos:
            if info.language.lower() == wanted:
                return info
        primary = _primary_subtag(wanted)
        for info in alert.infos:
            if _primary_subtag(info.language) == primary:
                return info
    return alert.infos[0]


def _clean(text: str | None) -> str:
    # Senders paste text with stray blank lines and trailing spaces; they carry no meaning.
    return text.strip() if text else ""


def _info_lines(info: Info, prefix: str) -> list[str]:
    event = _clean(info.event)
    if info.severity is Severity.UNKNOWN:
        # "Unknown — Gas leak" reads as if the sender did not know what happened.
        title = event
    else:
        title = f"{info.severity.value} — {event}" if event else info.severity.value
    headline = _clean(info.headline)
    lines = [title, prefix + headline] if headline else [prefix + title]
    lines.append(_clean(info.description))
    instruction = _clean(info.instruction)
    if instruction:
        lines.append(f"What to do: {instruction}")
    areas = [a for a in (_clean(area.description) for area in info.areas) if a]
    if areas:
        lines.append("Area: " + "; ".join(areas))
    if info.expires is not None:
        lines.append(f"Expires: {format_cap_time(info.expires)}")
    web = _clean(info.web)
    if web:
        lines.append(f"More info: {web}")
    return lines


def render_text(alert: Alert, *, language: str | None = None) -> str:
    """The full plain-text message for `alert`, in `language` when it has that block."""
    prefix = MSG_TYPE_PREFIXES.get(alert.msg_type, "")
    lines: list[str] = [STATUS_MARKERS.get(alert.status, "")]
    info = pick_info(alert, language)
    if info is None:
        lines.append(f"{prefix}Alert {alert.identifier} from {alert.sender}")
        lines.append(_clean(alert.note))
    else:
        lines.extend(_info_lines(info, prefix))
    return "\n".join(line for line in lines if line)


__all__ = ["MSG_TYPE_PREFIXES", "STATUS_MARKERS", "pick_info", "render_text"]
