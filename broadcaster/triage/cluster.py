"""Near-duplicate clustering: a responder sees one item with a count, not 300 retweets.

`Clusterer.assign(text, entities)` puts a post in the cluster of an earlier one when
- it is the same text once normalised (retweet prefix "RT @x:", links, mentions, case,
  accents and punctuation removed), or
- its word 3-shingles overlap an earlier post's enough (MinHash with banded LSH finds the
  candidates in O(1); the candidate is then checked exactly: overlap / smaller set ≥
  `similarity`, so a truncated retweet "… http://t.co/…" joins its original), or
- it names a vehicle plate an earlier post named (same plate = same vehicle = one story).

Memory is bounded: at most `capacity` clusters are remembered; the least recently hit is
forgotten first, with its index entries. Cost per post: one normalisation, 16 hashes per
shingle, 8 band look-ups. Deterministic (crc32, fixed coefficients), so ids do not depend on
the process's hash seed. Not thread-safe: one Clusterer per consumer.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

from broadcaster.triage.entities import Entities
from broadcaster.triage.text import tokens_of

_PRIME = (1 << 61) - 1
_HASHES = 16
_BANDS = 8
_ROWS = _HASHES // _BANDS
# Fixed odd multipliers and offsets: any fixed choice works; these are just well spread.
_A = tuple((0x9E3779B97F4A7C15 * (i + 1)) % _PRIME | 1 for i in range(_HASHES))
_B = tuple((0xC2B2AE3D27D4EB4F * (i + 7)) % _PRIME for i in range(_HASHES))
_NOISE = frozenset({"rt", "xurl", "xuser", "via"})
_MIN_SHINGLES = 4


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a post went: its cluster id, the cluster's size with it, and whether it is new."""

    cluster_id: str
    count: int
    new: bool


@dataclass(slots=True)
class _Cluster:
    shingles: frozenset[int]
    count: int = 1
    keys: list[tuple[str, object]] = field(default_factory=list)


class Clusterer:
    """Maps each post to a cluster id (see the module docstring)."""

    def __init__(self, capacity: int = 20_000, similarity: float = 0.7) -> None:
        if capacity < 1 or not 0.0 < similarity <= 1.0:
            raise ValueError("capacity must be ≥ 1 and similarity in (0, 1]")
        self.capacity = capacity
        self.similarity = similarity
        self._clusters: OrderedDict[str, _Cluster] = OrderedDict()
        self._index: dict[tuple[str, object], str] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._clusters)

    def assign(self, text: str, entities: Entities | None = None) -> Assignment:
        """The cluster of `text` (an existing one when it repeats an earlier post)."""
        words = [w for w in tokens_of(text)[0] if w not in _NOISE]
        exact: tuple[str, object] = ("text", " ".join(words))
        plates: list[tuple[str, object]] = (
            [("plate", p) for p in entities.plates] if entities else []
        )
        found = self._index.get(exact)
        for key in plates:
            found = found or self._index.get(key)
        # Shingles and bands (MinHash, the costly part) only for what no exact key matched:
        # in a flood of retweets most posts repeat one seen before.
        shingles: frozenset[int] = frozenset()
        bands: list[tuple[str, object]] = []
        if found is None:
            shingles = _shingles(words)
            if len(shingles) >= _MIN_SHINGLES:
                bands = [("band", b) for b in _bands(shingles)]
            for key in bands:
                candidate = self._index.get(key)
                if candidate and self._close(shingles, self._clusters[candidate].shingles):
                    found = candidate
                    break
        if found is not None:
            cluster = self._clusters[found]
            cluster.count += 1
            self._clusters.move_to_end(found)
            for key in (exact, *plates):
                if key not in self._index:
                    self._index[key] = found
                    cluster.keys.append(key)
            return Assignment(found, cluster.count, new=False)

        cluster_id = f"c{self._next}"
        self._next += 1
        cluster = _Cluster(shingles=shingles)
        for key in (exact, *plates, *bands):
            if key not in self._index:
                self._index[key] = cluster_id
                cluster.keys.append(key)
        self._clusters[cluster_id] = cluster
        if len(self._clusters) > self.capacity:
            self._forget_oldest()
        return Assignment(cluster_id, 1, new=True)

    def _close(self, a: frozenset[int], b: frozenset[int]) -> bool:
        smaller = min(len(a), len(b))
        return smaller >= _MIN_SHINGLES and len(a & b) / smaller >= self.similarity

    def _forget_oldest(self) -> None:
        cluster_id, cluster = self._clusters.popitem(last=False)
        for key in cluster.keys:
            if self._index.get(key) == cluster_id:
                del self._index[key]


def _shingles(words: list[str]) -> frozenset[int]:
    if len(words) < 3:
        return frozenset(zlib.crc32(w.encode()) for w in words)
    return frozenset(
        zlib.crc32(f"{words[i]} {words[i + 1]} {words[i + 2]}".encode())
        for i in range(len(words) - 2)
    )


def _bands(shingles: frozenset[int]) -> list[tuple[int, ...]]:
    """MinHash signature cut into bands; similar sets share a band with high probability."""
    signature = [min((a * s + b) % _PRIME for s in shingles) for a, b in zip(_A, _B, strict=True)]
    return [(band, *signature[band * _ROWS : (band + 1) * _ROWS]) for band in range(_BANDS)]
