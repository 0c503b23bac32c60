"""An alert as the public pages show it: a `Card` in the reader's language, the entries of
its history, the links to its other languages, and the pages' URLs.

Contract:
- Everything here is a pure function of the stored alert, the requested language and the
  time given: the same arguments give the same card, so a rendered page can be cached.
- `language_param` accepts only a well-formed language tag (BCP 47 shape, at most 35
  characters), else None; a card then shows one of the alert's own info blocks for it
  (`pick_info`: exact tag, then primary subtag, then the first block).
- `index_url` and `alert_url` build the pages' own links, omitting empty parameters.
- `safe_web_link` passes only http(s) links: a sender's `javascript:` link is never shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from adapters.http.templating import When, when
from alerts.models import Info, MsgType, reference_parts
from alerts.render import STATUS_MARKERS, pick_info
from broadcaster.ports import StoredAlert

_LANGUAGE_TAG = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
# Names of languages in themselves, for the language switch; other tags show as themselves.
LANGUAGE_NAMES = {
    "ar": "العربية",
    "bn": "বাংলা",
    "cy": "Cymraeg",
    "de": "Deutsch",
    "en": "English",
    "es": "Español",
    "fr": "Français",
    "ga": "Gaeilge",
    "gd": "Gàidhlig",
    "it": "Italiano",
    "nl": "Nederlands",
    "pa": "ਪੰਜਾਬੀ",
    "pl": "Polski",
    "pt": "Português",
    "ro": "Română",
    "ru": "Русский",
    "sv": "Svenska",
    "uk": "Українська",
    "ur": "اردو",
    "zh": "中文",
}


@dataclass(frozen=True, slots=True)
class LanguageLink:
    tag: str
    name: str
    url: str
    current: bool


@dataclass(frozen=True, slots=True)
class Card:
    """One alert as a page shows it, in the reader's language where it has one."""

    id: str
    url: str
    cap_url: str
    status: str
    marker: str | None
    msg_type: str
    severity: str
    severity_class: str
    urgency: str
    certainty: str
    info: Info | None
    language: str
    languages: tuple[LanguageLink, ...]
    areas: tuple[str, ...]
    issued: When | None
    updated: When | None
    expires: When | None
    expired: bool
    note: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: str
    url: str
    msg_type: str
    sent: When | None
    headline: str
    language: str
    current: bool


def language_param(raw: str | None) -> str | None:
    if raw and len(raw) <= 35 and _LANGUAGE_TAG.match(raw):
        return raw
    return None


def language_name(tag: str) -> str:
    return LANGUAGE_NAMES.get(tag.split("-", 1)[0].lower(), tag)


def index_url(lang: str | None = None, exercises: bool = False, fragment: str | None = None) -> str:
    params = {"lang": lang, "exercises": "1" if exercises else None, "fragment": fragment}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"/?{query}" if query else "/"


def alert_url(alert_id: str, lang: str | None = None, fragment: str | None = None) -> str:
    query = urlencode({k: v for k, v in {"lang": lang, "fragment": fragment}.items() if v})
    return f"/alerts/{alert_id}?{query}" if query else f"/alerts/{alert_id}"


def _first_sent(stored: StoredAlert) -> datetime:
    """When the incident was first alerted: the earliest `sent` this alert refers to (an
    Update's references carry it), else its own."""
    earliest = stored.alert.sent
    for reference in stored.alert.references:
        try:
            sent = datetime.fromisoformat(reference_parts(reference)[2])
        except ValueError:
            continue
        if sent.tzinfo is not None and sent < earliest:
            earliest = sent
    return earliest


def card(stored: StoredAlert, lang: str | None, link: Callable[[str], str], now: datetime) -> Card:
    alert = stored.alert
    info = pick_info(alert, lang)
    languages = tuple(
        LanguageLink(i.language, language_name(i.language), link(i.language), i is info)
        for i in alert.infos
    )
    updating = alert.msg_type is MsgType.UPDATE
    expires = info.expires if info else alert.expires
    return Card(
        id=stored.id,
        url=alert_url(stored.id, lang),
        cap_url=f"/alerts/{stored.id}.cap",
        status=alert.status.value,
        marker=STATUS_MARKERS.get(alert.status),
        msg_type=alert.msg_type.value,
        severity=(info.severity if info else alert.severity).value,
        severity_class=(info.severity if info else alert.severity).value.lower(),
        urgency=(info.urgency if info else alert.urgency).value,
        certainty=info.certainty.value if info else "Unknown",
        info=info,
        language=info.language if info else "en",
        languages=languages if len(languages) > 1 else (),
        areas=tuple(a.description for a in info.areas) if info else (),
        issued=when(_first_sent(stored) if updating else alert.sent),
        updated=when(alert.sent) if updating else None,
        expires=when(expires),
        expired=expires is not None and expires <= now,
        note=alert.note,
    )


def safe_web_link(url: str | None) -> str | None:
    """A sender's link, only when it is http(s): a `javascript:` link must never be clickable."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def language_of(stored: StoredAlert, lang: str | None) -> str:
    info = pick_info(stored.alert, lang)
    return info.language if info else "en"


def history_headline(stored: StoredAlert, lang: str | None) -> str:
    info = pick_info(stored.alert, lang)
    if info is None:
        return stored.alert.note or f"{stored.alert.msg_type.value} {stored.alert.identifier}"
    return info.headline or info.event
