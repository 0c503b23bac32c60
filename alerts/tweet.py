"""X (Twitter) rendering of an alert: twitter-text v3 weighted length, truncation and threads.

Contract:
- `weighted_length(text)` is the length X enforces, per twitter-text's v3 configuration:
  the text is NFC-normalised; every URL counts 23 whatever its length (http/https URLs,
  `www.` URLs and bare domains with a generic TLD, or a country-code TLD when the domain has a
  path or more than one label, as twitter-text does); every emoji sequence (ZWJ sequence, skin
  tone, flag, keycap, VS16 or tag sequence) counts 2 as a whole; every other code point counts 1
  inside U+0000..U+10FF, U+2000..U+200D, U+2010..U+201F, U+2032..U+2037 and 2 elsewhere.
  Where twitter-text's rules are uncertain we count high, never low: a count that is too high
  costs a few characters, one that is too low gets the post rejected mid-emergency.
- `fits(text, limit)` is `weighted_length(text) <= limit`.
- `truncate_to(text, limit, ellipsis)` returns `text` when it fits, else its longest prefix
  (cut between graphemes, never inside a URL or emoji sequence, at a word boundary when one
  is near) plus `ellipsis` that fits `limit`; "" when not even the ellipsis fits.
- `render_posts(alert, link=..., mode=..., language=...)` returns the posts for one alert,
  pure and deterministic. Parts, one per line: status marker (non-Actual only), message-type
  prefix + headline (or + "severity — event" when there is no headline), "severity — event",
  description, "What to do: ...", "Area: ...", `link`. When it all fits, one post. Otherwise
  mode "link" gives one post (marker, prefixed headline truncated with "…", the event line
  when it fits whole, link) and mode "thread" splits the text between words into posts that
  end with " (i/N)"; each post, counter included, is at most 280; the link is in the last post;
  a non-Actual alert's marker starts every post so no post alone can pass for a live alert.
  Mode "link" without a link falls back to a thread, so the instructions are never dropped.
- Posting an Update/Cancel as a reply in the original's thread is the X adapter's job: it
  knows the post ids; these functions only produce text.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from alerts.models import Alert, Info, Severity
from alerts.render import MSG_TYPE_PREFIXES, STATUS_MARKERS, pick_info, reply_prompt

# twitter-text config/v3.json. Weights are per mille-ish "scale" units so that light code
# points (100) and heavy ones (200) can be summed exactly before dividing.
MAX_WEIGHTED_LENGTH = 280
_SCALE = 100
_DEFAULT_WEIGHT = 200
_URL_WEIGHT = 23 * _SCALE
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

_ZWJ = "\u200d"
_VS16 = "\ufe0f"
_KEYCAP = "\u20e3"

# Emoji bases (Extended_Pictographic, widened to whole blocks). Widening is harmless: outside
# the light ranges a lone code point weighs 2 anyway, exactly what an emoji weighs. © and ®
# are included on purpose: twitter-text's emoji pattern appears to take them with an optional
# VS16, and counting them 2 errs on the safe (high) side.
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x24C2, 0x24C2),
    (0x25A0, 0x27BF),
    (0x2900, 0x297F),
    (0x2B00, 0x2BFF),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1FAFF),
    (0x1FC00, 0x1FFFD),
)
# Modifiers that stay inside the emoji before them: VS16, skin tones, tag characters (the
# subdivision flags such as England's are a black flag followed by tags).
_EMOJI_MODIFIERS = ((0xFE0F, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F))
_REGIONAL_INDICATORS = (0x1F1E6, 0x1F1FF)

# URL characters: ASCII only. Ending a URL too early is safe (the rest is counted on top of
# the 23), ending it too late is not, so non-ASCII always ends a URL.
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%|]"
_GENERIC_TLDS = (
    "com|org|net|edu|gov|mil|int|info|biz|name|pro|mobi|aero|coop|museum|travel|jobs|"
    "app|dev|page|online|site|website|news|live|today|xyz|top|store|shop|blog|cloud|tech|"
    "health|care|world|city|global|help|alert|media|network|social|services|support"
)
_URL_RE = re.compile(
    r"(?<![A-Za-z0-9@.\-/_$#])(?:"
    rf"(?P<full>(?:https?://|www\.)[A-Za-z0-9]{_URL_CHARS}*)"
    rf"|(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+"
    rf"(?P<tld>{_GENERIC_TLDS}|[A-Za-z]{{2}}))(?![A-Za-z0-9@_\-])(?P<path>/{_URL_CHARS}*)?"
    r")",
    re.IGNORECASE,
)
# twitter-text does not take trailing punctuation into a URL ("see https://x.org/a.").
_URL_END_CHARS = frozenset("=_#/+-")


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _code_point_weight(char: str) -> int:
    return _SCALE if _in(ord(char), _LIGHT_RANGES) else _DEFAULT_WEIGHT


def _trim_url(url: str) -> str:
    while url:
        last = url[-1]
        if last.isalnum() or last in _URL_END_CHARS:
            break
        # A closing parenthesis belongs to the URL only when it closes one opened inside it
        # (Wikipedia-style "Foo_(bar)").
        if last == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _url_spans(text: str) -> dict[int, int]:
    """Start index -> end index of every URL twitter-text would count as 23."""
    spans: dict[int, int] = {}
    for match in _URL_RE.finditer(text):
        if match.group("domain") is not None:
            tld = match.group("tld").lower()
            labels = match.group("domain").count(".")
            # A bare "name.cc" (one label, country-code TLD, no path) is not linked.
            if len(tld) == 2 and labels == 1 and match.group("path") is None:
                continue
        url = _trim_url(match.group(0))
        if "." in url or "://" in url:
            spans[match.start()] = match.start() + len(url)
    return spans


def _emoji_tail(text: str, index: int) -> int:
    """Index after the modifiers starting at `index` that belong to the emoji before them."""
    while index < len(text) and _in(ord(text[index]), _EMOJI_MODIFIERS):
        index += 1
    return index


def _emoji_end(text: str, index: int) -> int:
    """End of the emoji sequence starting at `index`, or `index` when none starts there."""
    char = text[index]
    code = ord(char)
    if char in "0123456789#*":
        end = index + 1
        if text[end : end + 1] == _VS16:
            end += 1
        return end + 1 if text[end : end + 1] == _KEYCAP else index
    if _REGIONAL_INDICATORS[0] <= code <= _REGIONAL_INDICATORS[1]:
        pair = index + 1 < len(text) and _in(ord(text[index + 1]), (_REGIONAL_INDICATORS,))
        return index + 2 if pair else index + 1
    if not _in(code, _PICTOGRAPHIC):
        return index
    end = _emoji_tail(text, index + 1)
    while end + 1 < len(text) and text[end] == _ZWJ and _in(ord(text[end + 1]), _PICTOGRAPHIC):
        end = _emoji_tail(text, end + 2)
    return end


def _units(text: str) -> list[tuple[str, int]]:
    """`text` cut into indivisible units with their weights: URLs, emoji sequences, and
    otherwise one code point with the combining marks and joiners that follow it."""
    spans = _url_spans(text)
    units: list[tuple[str, int]] = []
    index = 0
    while index < len(text):
        if index in spans:
            end = spans[index]
            units.append((text[index:end], _URL_WEIGHT))
            index = end
            continue
        end = _emoji_end(text, index)
        if end > index:
            units.append((text[index:end], _DEFAULT_WEIGHT))
            index = end
            continue
        end = index + 1
        # Marks and joiners render as part of the character before them; keep them together
        # so a cut never separates an accent or a variation selector from its base.
        while end < len(text) and (
            unicodedata.category(text[end]).startswith("M") or text[end] in (_ZWJ, _VS16)
        ):
            end += 1
        units.append((text[index:end], sum(_code_point_weight(c) for c in text[index:end])))
        index = end
    return units


def weighted_length(text: str) -> int:
    """The twitter-text v3 weighted length of `text` (X's limit is 280)."""
    normalized = unicodedata.normalize("NFC", text)
    return sum(weight for _, weight in _units(normalized)) // _SCALE


def fits(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> bool:
    """Whether `text` fits in `limit` weighted characters."""
    return weighted_length(text) <= limit


def truncate_to(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` if it fits `limit`, else its longest whole-unit prefix plus `ellipsis` that does."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    text = unicodedata.normalize("NFC", text)
    if fits(text, limit):
        return text
    if not fits(ellipsis, limit):
        return ""
    budget = limit * _SCALE - weighted_length(ellipsis) * _SCALE
    kept: list[str] = []
    for unit, weight in _units(text):
        if weight > budget:
            break
        kept.append(unit)
        budget -= weight
    prefix = "".join(kept)
    # Prefer ending on a word when that loses little: "Tornado approaching…", not "approa…".
    space = max(prefix.rfind(" "), prefix.rfind("\n"))
    if len(prefix) < len(text) and not text[len(prefix)].isspace() and space > len(prefix) // 2:
        prefix = prefix[:space]
    result = prefix.rstrip() + ellipsis
    # Units are summed in isolation; re-check the joined text (a URL can form across a cut).
    while kept and not fits(result, limit):
        kept.pop()
        result = "".join(kept).rstrip() + ellipsis
    return result if fits(result, limit) else ""


def _clean(text: str | None) -> str:
    return unicodedata.normalize("NFC", text.strip()) if text else ""


def _event_line(info: Info) -> str:
    event = _clean(info.event)
    # An Unknown severity is left out, as in render_text: it reads as if nobody knew.
    if info.severity is Severity.UNKNOWN:
        return event
    return f"{info.severity.value} — {event}" if event else info.severity.value


def _body_lines(alert: Alert, language: str | None) -> tuple[list[str], str]:
    """The alert's parts after the marker, and the event line when it is a part of its own.
    The first part carries the message-type prefix so that "CANCELLED:" or "UPDATE:" is the
    first thing a reader sees."""
    prefix = MSG_TYPE_PREFIXES.get(alert.msg_type, "")
    info = pick_info(alert, language)
    if info is None:
        return [f"{prefix}Alert {alert.identifier} from {alert.sender}", _clean(alert.note)], ""
    event = _event_line(info)
    headline = _clean(info.headline)
    lines = [prefix + headline, event] if headline else [prefix + event]
    lines.append(_clean(info.description))
    instruction = _clean(info.instruction)
    if instruction:
        lines.append(f"What to do: {instruction}")
    areas = [a for a in (_clean(area.description) for area in info.areas) if a]
    if areas:
        lines.append("Area: " + "; ".join(areas))
    lines.append(_clean(reply_prompt(alert)))
    return lines, event if headline else ""


def _link_post(header: str, lead: str, event: str, link: str) -> str:
    tail = "\n" + link
    budget = MAX_WEIGHTED_LENGTH - weighted_length(header + tail)
    # The event line ("Extreme — Tornado Warning") is added only when it fits whole.
    if event and fits(header + lead + "\n" + event + tail):
        return header + lead + "\n" + event + tail
    return header + truncate_to(lead, budget) + tail


def _fill(header: str, tokens: list[tuple[str, str]], reserve: str) -> list[str]:
    """Greedy split of (separator, word) tokens into post bodies that fit with `header`
    before and `reserve` (the widest counter) after them."""
    posts: list[str] = []
    current = ""
    for separator, word in tokens:
        candidate = current + separator + word if current else word
        if fits(header + candidate + reserve):
            current = candidate
            continue
        if current and fits(header + word + reserve):
            posts.append(current)
            current = word
            continue
        # A word longer than a post (unspaced CJK text, a long token): cut between units,
        # which never splits a URL, an emoji sequence or a grapheme.
        glue = separator if current else ""
        for unit, _ in _units(word):
            candidate = current + glue + unit
            if current and not fits(header + candidate + reserve):
                posts.append(current)
                candidate = unit
            current = candidate
            glue = ""
    if current:
        posts.append(current)
    return posts


def _thread(header: str, body: str) -> list[str]:
    # Keep line breaks where the text had them; any other whitespace run becomes one space.
    tokens = [
        ("\n" if "\n" in m.group(1) else " ", m.group(2)) for m in re.finditer(r"(\s*)(\S+)", body)
    ]
    digits = 1
    while True:
        # Reserve room for the widest counter of this many digits; widen and redo if the
        # thread turns out longer (10+ posts), so every counter is sure to fit.
        reserve = f" ({'9' * digits}/{'9' * digits})"
        bodies = _fill(header, tokens, reserve)
        if len(str(len(bodies))) <= digits:
            break
        digits = len(str(len(bodies)))
    total = len(bodies)
    return [f"{header}{text} ({i}/{total})" for i, text in enumerate(bodies, start=1)]


def render_posts(
    alert: Alert,
    *,
    link: str | None,
    mode: Literal["thread", "link"] = "thread",
    language: str | None = None,
) -> list[str]:
    """The X posts for `alert`: one when it fits, else a numbered thread or a headline + link."""
    marker = STATUS_MARKERS.get(alert.status, "")
    header = marker + "\n" if marker else ""
    parts, event = _body_lines(alert, language)
    lines = [line for line in parts if line]
    link = link.strip() if link else None
    full = header + "\n".join([*lines, link] if link else lines)
    if fits(full):
        return [full]
    if mode == "link" and link:
        return [_link_post(header, lines[0], event, link)]
    return _thread(header, "\n".join([*lines, link] if link else lines))


__all__ = ["MAX_WEIGHTED_LENGTH", "fits", "render_posts", "truncate_to", "weighted_length"]
