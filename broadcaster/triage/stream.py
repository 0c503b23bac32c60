"""The JSON-lines transformation behind `broadcaster triage classify` (no I/O here).

Contract, one output line per non-blank input line, in order:
- input `{"id": ..., "text": "..."}` → `{"id", "categories", "score", "scores",
  "entities", "cluster", "cluster_count"}` (`score` the highest of `scores`, one per
  category); a missing `id` is `null`; extra input keys are ignored;
- a line that is not a JSON object, or whose `text` is missing or not a string →
  `{"id": <id or null>, "categories": [], "error": "bad_json" | "bad_text", "detail": "..."}`
  (no category, so a reader that only looks at `categories` files it nowhere), and the
  stream goes on;
- blank lines are skipped.
Clusters are kept across the whole stream (one `Clusterer` per call).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from broadcaster.triage.cluster import Clusterer
from broadcaster.triage.model import Triage, classify


def classify_lines(
    lines: Iterable[str],
    classifier: Callable[[str], Triage] = classify,
    clusterer: Clusterer | None = None,
) -> Iterator[str]:
    """Yield one JSON line (without newline) per non-blank input line."""
    clusters = clusterer or Clusterer()
    for line in lines:
        if not line.strip():
            continue
        yield json.dumps(_one(line, classifier, clusters), ensure_ascii=False)


def _one(line: str, classifier: Callable[[str], Triage], clusters: Clusterer) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return _refused(None, "bad_json", f"not JSON: {exc}"[:200])
    if not isinstance(item, dict):
        return _refused(None, "bad_json", "each line must be a JSON object")
    ident = item.get("id")
    if not isinstance(ident, str | int | float) or isinstance(ident, bool):
        ident = None if ident is None else json.dumps(ident)[:100]
    text = item.get("text")
    if not isinstance(text, str):
        return _refused(ident, "bad_text", '"text" must be a string')
    triage = classifier(text)
    placed = clusters.assign(text, triage.entities)
    return {
        "id": ident,
        **triage.as_dict(),
        "cluster": placed.cluster_id,
        "cluster_count": placed.count,
    }


def _refused(ident: object, error: str, detail: str) -> dict[str, Any]:
    return {"id": ident, "categories": [], "error": error, "detail": detail}
