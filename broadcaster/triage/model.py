"""`classify(text)`: which responder feeds (SUSPECT, HAZARD) a public reply belongs in.

The model is a linear one (logistic regression per category over `text.features`) trained
offline by `tools/train_triage.py` and shipped as `model.json` in this package; nothing is
downloaded or trained at run time, and scoring is a few dictionary look-ups per feature.

Contract:
- `classify(text)` never raises for any string; `Triage.categories` ⊆ {"suspect", "hazard"}
  holds each category whose score reaches its threshold; `scores` has both categories in
  [0, 1]; `entities` are those of `entities.extract`.
- Thresholds favour recall (a missed suspect or hazard costs more than a false alarm): each is
  the highest threshold at which leave-one-event-out recall on the development set stays ≥
  the model file's `target_recall` in `recall_confidence` of the resamples of its events
  (a margin for posts of new events); `model.json` records the CV precision and recall.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from broadcaster.triage.entities import Entities, extract
from broadcaster.triage.text import features

CATEGORIES = ("suspect", "hazard")


@dataclass(frozen=True, slots=True)
class Triage:
    """The verdict on one post."""

    categories: frozenset[str]
    scores: dict[str, float]
    entities: Entities = field(default_factory=Entities)

    @property
    def score(self) -> float:
        """The highest category score: how strongly the post calls for a responder."""
        return max(self.scores.values(), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: categories sorted, `score` (the highest, one number as the API's reply
        `score`) and `scores` per category rounded to 3 places, non-empty entities."""
        return {
            "categories": sorted(self.categories),
            "score": round(self.score, 3),
            "scores": {k: round(v, 3) for k, v in self.scores.items()},
            "entities": self.entities.as_dict(),
        }


@dataclass(frozen=True)
class Model:
    """Weights per feature (one per category, in `CATEGORIES` order), biases, thresholds."""

    weights: dict[str, tuple[float, ...]]
    bias: tuple[float, ...]
    thresholds: dict[str, float]
    meta: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        """Build from the `model.json` layout written by `tools/train_triage.py`."""
        if tuple(data["categories"]) != CATEGORIES:
            raise ValueError(f"model categories {data['categories']} are not {CATEGORIES}")
        return cls(
            weights={name: tuple(w) for name, w in data["weights"].items()},
            bias=tuple(data["bias"]),
            thresholds=dict(data["thresholds"]),
            meta={k: v for k, v in data.items() if k not in {"weights", "bias", "thresholds"}},
        )

    def scores(self, row: dict[str, float]) -> dict[str, float]:
        """Probability per category for one feature row."""
        s, h = self.bias
        weights = self.weights
        for name, value in row.items():
            w = weights.get(name)
            if w is not None:
                s += w[0] * value
                h += w[1] * value
        return {"suspect": _sigmoid(s), "hazard": _sigmoid(h)}

    def classify(self, text: str) -> Triage:
        """Score `text` and apply the thresholds (see the module docstring)."""
        entities = extract(text)
        scores = self.scores(features(text, entities.kinds()))
        chosen = frozenset(c for c in CATEGORIES if scores[c] >= self.thresholds[c])
        return Triage(categories=chosen, scores=scores, entities=entities)


@cache
def packaged_model() -> Model:
    """The model shipped in this package (read once per process)."""
    text = resources.files(__package__).joinpath("model.json").read_text(encoding="utf-8")
    return Model.from_json(json.loads(text))


def classify(text: str) -> Triage:
    """Triage one post with the packaged model."""
    return packaged_model().classify(text)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
