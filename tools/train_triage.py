"""Train the triage model and write `broadcaster/triage/model.json`.

    .venv/bin/python tools/train_triage.py [--data tests/data/triage] [--out PATH]

Recipe (deterministic: one seeded generator, same data → same file):
1. features of every post (`broadcaster.triage.text.features`, with entity kinds);
2. leave-one-event-out CV on dev.jsonl, training on the other events' dev posts plus their
   silver posts (silver.jsonl, both categories, weight `SILVER_WEIGHT`) and weak CrisisLexT26
   hazard rows (hazard only, weight `WEAK_WEIGHT`): out-of-fold scores for every dev post.
   Only dev posts (gold labels) are scored: the figures never rest on silver labels;
3. per category, the threshold = the highest score at which out-of-fold recall stays ≥
   `TARGET_RECALL` on at least `RECALL_CONFIDENCE` of `BOOTSTRAP_DRAWS` resamples of the dev
   events (recall first: a missed suspect or hazard is the costly error). A threshold that
   only just reaches 0.90 on these 21 events falls below it on about half of their
   resamples, which stand in for new events; the margin is paid for in precision;
4. the final model is fitted on all the data; the CV precision/recall at the chosen
   thresholds are written into the file with it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.triage import learn  # noqa: E402
from broadcaster.triage.entities import extract  # noqa: E402
from broadcaster.triage.model import CATEGORIES  # noqa: E402
from broadcaster.triage.text import features  # noqa: E402

L2 = 10.0
SILVER_WEIGHT = (1.0, 1.0)
WEAK_WEIGHT = (0.0, 0.5)  # CrisisLexT26's information types say nothing about suspects
TARGET_RECALL = 0.90
# How sure the threshold makes us that recall on posts of new events stays ≥ TARGET_RECALL,
# estimated by resampling the dev events with replacement (seeded, so deterministic).
RECALL_CONFIDENCE = 0.85
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 20261203

Post = dict[str, object]


def _jsonl(path: Path) -> list[Post]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def load(data: Path) -> tuple[list[Post], list[Post]]:
    """(dev posts, training-only posts) from the data folder.

    Training-only posts are the silver posts (labelled by GUIDELINE.md, both categories) and
    the weak CrisisLexT26 hazard rows (`suspect` absent); each carries its `weight` pair.
    """
    dev = _jsonl(data / "dev.jsonl")
    extra = [{**post, "weight": SILVER_WEIGHT} for post in _jsonl(data / "silver.jsonl")]
    extra += [
        {**row, "suspect": 0, "weight": WEAK_WEIGHT}
        for row in _jsonl(data / "crisislex_hazard.jsonl")
    ]
    return dev, extra


def row(text: str) -> dict[str, float]:
    return features(text, extract(text).kinds())


def labels(posts: list[Post]) -> list[list[int]]:
    return [[int(str(p[c])) for c in CATEGORIES] for p in posts]


def weights(posts: list[Post]) -> list[list[float]]:
    return [list(cast(tuple[float, float], p["weight"])) for p in posts]


def cross_validate(dev: list[Post], extra: list[Post]) -> list[list[float]]:
    """Leave-one-event-out scores for every dev post (the honest estimate)."""
    return learn.leave_one_group_out(
        [row(str(p["text"])) for p in dev],
        labels(dev),
        [str(p["event"]) for p in dev],
        extra_rows=[row(str(p["text"])) for p in extra],
        extra_labels=labels(extra),
        extra_groups=[str(p["event"]) for p in extra],
        extra_weights=weights(extra),
        l2=L2,
    )


def average_precision(scores: list[float], truth: list[int]) -> float:
    """Mean of the precision at each positive, ranked by score; ties rank negatives first,
    so the figure never rests on the order of the input."""
    ranked = sorted(zip(scores, truth, strict=True), key=lambda pair: (-pair[0], pair[1]))
    found, total = 0, 0.0
    for rank, (_, positive) in enumerate(ranked, 1):
        if positive:
            found += 1
            total += found / rank
    return total / found if found else 0.0


def recall_threshold(scores: list[float], truth: list[int], target: float) -> float:
    """The highest threshold whose recall is still ≥ target."""
    positives = sorted((s for s, t in zip(scores, truth, strict=True) if t), reverse=True)
    needed = max(1, math.ceil(target * len(positives) - 1e-9))
    return positives[min(needed, len(positives)) - 1]


def event_safe_threshold(
    scores: list[float], truth: list[int], events: list[str], target: float, confidence: float
) -> float:
    """The highest threshold (a positive's score) whose recall is ≥ `target` in at least
    `confidence` of the bootstrap resamples of `events` (each draws as many events as there
    are, with replacement, and pools their posts)."""
    names = sorted(set(events))
    index = {name: i for i, name in enumerate(names)}
    rng = random.Random(BOOTSTRAP_SEED)  # noqa: S311 - a statistical resample, seeded
    draws = [[rng.randrange(len(names)) for _ in names] for _ in range(BOOTSTRAP_DRAWS)]
    positives = sorted(
        ((s, index[e]) for s, t, e in zip(scores, truth, events, strict=True) if t),
        reverse=True,
    )
    if not positives:
        raise ValueError("no positive posts: no threshold keeps any recall")
    total = [0] * len(names)
    for _, event in positives:
        total[event] += 1
    found = [0] * len(names)
    for score, event in positives:  # lower the threshold one positive at a time
        found[event] += 1
        reached = 0
        for draw in draws:
            tp = sum(found[i] for i in draw)
            pos = sum(total[i] for i in draw)
            reached += pos == 0 or tp >= target * pos - 1e-9
        if reached >= confidence * len(draws):
            return score
    return positives[-1][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "tests/data/triage")
    parser.add_argument("--out", type=Path, default=ROOT / "broadcaster/triage/model.json")
    args = parser.parse_args()
    dev, extra = load(args.data)
    oof = cross_validate(dev, extra)
    thresholds: dict[str, float] = {}
    cv: dict[str, dict[str, object]] = {}
    for k, category in enumerate(CATEGORIES):
        scores = [s[k] for s in oof]
        truth = [int(str(p[category])) for p in dev]
        events = [str(p["event"]) for p in dev]
        safe = event_safe_threshold(scores, truth, events, TARGET_RECALL, RECALL_CONFIDENCE)
        # Rounded down to the 4 places stored, so the stored threshold keeps the recall.
        t = math.floor(safe * 1e4) / 1e4
        precision, recall = learn.precision_recall([s >= t for s in scores], truth)
        bare = recall_threshold(scores, truth, TARGET_RECALL)
        bare_precision, bare_recall = learn.precision_recall([s >= bare for s in scores], truth)
        p80 = learn.choose_threshold(scores, truth, 0.80)
        _, recall_at_p80 = learn.precision_recall([s >= p80 for s in scores], truth)
        thresholds[category] = t
        cv[category] = {
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "recall_at_precision_0.80": round(recall_at_p80, 3),
            "average_precision": round(average_precision(scores, truth), 3),
            f"at_recall_{TARGET_RECALL:.2f}": {
                "precision": round(bare_precision, 3),
                "recall": round(bare_recall, 3),
            },
        }
        print(
            f"{category}: threshold {t:.3f} CV precision {precision:.3f} recall {recall:.3f} "
            f"(at bare recall {TARGET_RECALL}: precision {bare_precision:.3f} "
            f"recall {bare_recall:.3f}; average precision {cv[category]['average_precision']:.3f})"
        )
    model = learn.fit(
        [row(str(p["text"])) for p in dev + extra],
        labels(dev + extra),
        [[1.0, 1.0]] * len(dev) + weights(extra),
        l2=L2,
    )
    document = {
        "about": "broadcaster triage model: logistic regression per category over "
        "broadcaster.triage.text.features; written by tools/train_triage.py",
        "categories": list(CATEGORIES),
        "l2": L2,
        "silver_weight": list(SILVER_WEIGHT),
        "weak_weight": list(WEAK_WEIGHT),
        "training_posts": {"dev": len(dev), "silver_and_weak": len(extra)},
        "target_recall": TARGET_RECALL,
        "recall_confidence": RECALL_CONFIDENCE,
        "cv": cv,
        "thresholds": thresholds,
        "bias": model.bias,
        "weights": dict(sorted(model.weights.items())),
    }
    args.out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    print(
        f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(model.weights)} features)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
