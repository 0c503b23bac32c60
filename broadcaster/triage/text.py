"""Post text → normalised tokens → the sparse features the triage model scores.

Contract: `features(text)` is a pure function of the text returning `{name: value}` with
values in (0, 4]; the same text always gives the same features in every process (no use of
the randomised built-in `hash`). The training tool and the runtime classifier both call it,
so what the model learnt is exactly what it sees at run time.

Feature families (the prefix is the family):
- `w:` word, `b:` word pair (character n-grams were tried and dropped: no better in
  leave-one-event-out CV, and slower; the lexicon's stems carry morphology across languages);
- `g:` lexicon group (see `lexicon.py`), with `g2:` when a group matches twice or more;
- `e:` entity kinds found by `entities.extract` (a plate, a weapon, a description ...);
- `f:` form: retweet, link, question, a number next to a casualty word.
Group, entity and form features carry a larger value than n-grams: with one L2 penalty for all
weights, that lets the transferable features dominate over event-specific words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from broadcaster.triage.lexicon import Lexicon, packaged_lexicon

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+")
_NUMBER_NEAR = re.compile(
    r"\b\d[\d,.]*\s+(?:\w+\s+)?(?:dead|killed|injured|hurt|wounded|missing|hostages?|people|"
    r"victims?|bodies|muertos|heridos|mortos|feridos|morti|feriti|morts|blesses|victimas)\b"
)

GROUP_VALUE = 2.0
ENTITY_VALUE = 2.0
FORM_VALUE = 1.5


def fold(text: str) -> str:
    """Lower-case and strip accents ("Evacuación" → "evacuacion"); other scripts are kept."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    if decomposed.isascii():
        return decomposed
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=256)
def tokens_of(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tokens, hashtag bodies) of a post, folded; links become `xurl`, mentions `xuser`.

    A camel-case hashtag is split into its words ("#SydneySiege" → "sydney", "siege"); the
    folded hashtag bodies are returned separately for mid-word lexicon matching. Cached for
    the last few texts: the model and the clusterer read the same reply one after the other.
    """
    text = _URL.sub(" xurl ", text)
    text = _MENTION.sub(" xuser ", text)
    hashtags = tuple(fold(tag) for tag in _HASHTAG.findall(text))
    text = _HASHTAG.sub(lambda m: " " + _CAMEL.sub(" ", m.group(1)) + " ", text)
    return tuple(_WORD.findall(fold(text))), hashtags


def features(
    text: str, entity_kinds: Iterable[str] = (), lexicon: Lexicon | None = None
) -> dict[str, float]:
    """The model's features of one post (see the module docstring for the families)."""
    lexicon = lexicon or packaged_lexicon()
    tokens, hashtags = tokens_of(text)
    out: dict[str, float] = {}
    previous = "^"
    for token in tokens:
        out["w:" + token] = 1.0
        out["b:" + previous + "_" + token] = 1.0
        previous = token
    for group, count in lexicon.match(tokens, hashtags).items():
        out["g:" + group] = GROUP_VALUE
        if count > 1:
            out["g2:" + group] = GROUP_VALUE / 2
    for kind in entity_kinds:
        out["e:" + kind] = ENTITY_VALUE
    stripped = text.lstrip()
    if stripped[:3].lower() == "rt " or stripped[:4].lower() == "rt@":
        out["f:retweet"] = FORM_VALUE
    if "xurl" in tokens:
        out["f:link"] = FORM_VALUE
    if "?" in text:
        out["f:question"] = FORM_VALUE
    if _NUMBER_NEAR.search(fold(text)):
        out["f:count"] = FORM_VALUE
    out["f:bias"] = 1.0
    return out
