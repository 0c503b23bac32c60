"""Multilingual term groups (`lexicon.json`), matched on normalised tokens.

A group ("hz_fire", "sus_actor", ...) is a feature of the triage model: a term the training
posts never used (say "incendio" in an English-heavy training set) still moves the score
through its group's weight. That is what lets the model carry to events and languages it has
not seen.

Terms are accent-folded and lower-case, as `text.normalise` leaves posts. A term ending in `*`
is a stem and matches any token (or run of tokens) it begins; other terms match whole tokens.
Multi-word terms match runs of up to three tokens. Inside a hashtag ("#yycflood",
"#LAXshooting") terms of four or more letters also match mid-word, since hashtags glue words.
A term written with a leading `#` matches only at the end of a hashtag ("#strong" is in
"#BostonStrong" and "#calgarystrong", never in "a strong smell of gas").

Matching is dictionary look-ups per token prefix, never a regex alternation over the text, so
it costs a few microseconds per post whatever the size of the lexicon.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

_MAX_WORDS = 3
# Stems shorter than this would match too much when found mid-hashtag.
_MIN_INFIX = 4
_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class Lexicon:
    """Term → groups tables built from the packaged JSON (or any mapping, for tests)."""

    exact: dict[str, tuple[str, ...]]
    stems: dict[str, tuple[str, ...]]
    stem_lengths: tuple[int, ...]
    groups: tuple[str, ...]
    # The first k words (k ≥ 1) of every multi-word term, stem or not: a phrase is extended
    # by a word only while it is one of these.
    phrase_starts: frozenset[str]
    # Hashtag-only terms (written "#term"), matched as a hashtag body's ending.
    tag_endings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # token → groups, filled as posts are seen (bounded; the same words recur in every post).
    _cache: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    # hashtag body → groups glued inside it (an incident's few hashtags recur in every post).
    _infix_cache: dict[str, tuple[str, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_mapping(cls, groups: dict[str, Sequence[str]]) -> Lexicon:
        """Build the tables; keys starting with `_` are comments and are skipped."""
        exact: dict[str, set[str]] = {}
        stems: dict[str, set[str]] = {}
        tag_endings: dict[str, set[str]] = {}
        names = sorted(name for name in groups if not name.startswith("_"))
        for name in names:
            for raw in groups[name]:
                term = " ".join(raw.lower().split())
                if term.startswith("#"):
                    tag_endings.setdefault(term[1:], set()).add(name)
                elif term.endswith("*"):
                    stems.setdefault(term[:-1].rstrip(), set()).add(name)
                else:
                    exact.setdefault(term, set()).add(name)
        return cls(
            exact={term: tuple(sorted(g)) for term, g in exact.items()},
            stems={term: tuple(sorted(g)) for term, g in stems.items()},
            stem_lengths=tuple(sorted({len(term) for term in stems})),
            groups=tuple(names),
            phrase_starts=frozenset(
                " ".join(t.split()[:k]) for t in [*exact, *stems] for k in range(1, len(t.split()))
            ),
            tag_endings={term: tuple(sorted(g)) for term, g in tag_endings.items()},
        )

    def match(self, tokens: Sequence[str], hashtags: Iterable[str] = ()) -> dict[str, int]:
        """Count matches per group over `tokens` (and mid-word inside `hashtags`)."""
        counts: dict[str, int] = {}
        n = len(tokens)
        table, starts = self._cache, self.phrase_starts
        for i, token in enumerate(tokens):
            for group in _cached(table, token, self._groups_of):
                counts[group] = counts.get(group, 0) + 1
            if token in starts:
                phrase = token
                for width in range(1, min(_MAX_WORDS, n - i)):
                    if phrase not in starts:
                        break  # no multi-word term goes on from here
                    phrase = phrase + " " + tokens[i + width]
                    for group in self._groups_of(phrase, len(token) + 1):
                        counts[group] = counts.get(group, 0) + 1
        for tag in hashtags:
            for group in _cached(self._infix_cache, tag, self._infix_groups):
                counts[group] = counts.get(group, 0) + 1
        return counts

    def _groups_of(self, phrase: str, shortest: int = 0) -> tuple[str, ...]:
        """Groups of an exact term or of stems at least `shortest` long that begin `phrase`."""
        found: tuple[str, ...] = self.exact.get(phrase, ())
        for length in self.stem_lengths:
            if length < shortest:
                continue
            if length > len(phrase):
                break
            stem = self.stems.get(phrase[:length])
            if stem:
                found = found + stem
        return found

    def _infix_groups(self, tag: str) -> tuple[str, ...]:
        """Groups of the terms glued inside a hashtag ("nswfires" has "fire", "sghaze" has
        "haze") and of the hashtag-only terms it ends with, each once."""
        seen: set[str] = set()
        for start in range(1, len(tag) - _MIN_INFIX + 1):
            rest = tag[start:]
            for length in range(_MIN_INFIX, len(rest) + 1):
                piece = rest[:length]
                for found in (
                    self.exact.get(piece) if length == len(rest) else None,
                    self.stems.get(piece),
                ):
                    if found:
                        seen.update(found)
        for start in range(len(tag)):
            seen.update(self.tag_endings.get(tag[start:], ()))
        return tuple(sorted(seen))


def _cached(
    table: dict[str, tuple[str, ...]], key: str, compute: Callable[[str], tuple[str, ...]]
) -> tuple[str, ...]:
    """`compute(key)`, remembered in `table` while it holds fewer than _CACHE_SIZE keys."""
    found = table.get(key)
    if found is None:
        found = compute(key)
        if len(table) < _CACHE_SIZE:
            table[key] = found
    return found


@cache
def packaged_lexicon() -> Lexicon:
    """The lexicon shipped in this package (read once per process)."""
    text = resources.files(__package__).joinpath("lexicon.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return Lexicon.from_mapping({k: v for k, v in data.items() if isinstance(v, list)})
