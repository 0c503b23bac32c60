"""Triage of the public's replies: which go to the SUSPECT and HAZARD feeds, what they say.

The domain layer for replies: pure functions over text plus the model and lexicon files
shipped in this package (read with importlib.resources; nothing else is read or written).

- `classify(text) -> Triage`: categories ⊆ {"suspect", "hazard"}, a score per category,
  and the entities (`model.py`, `text.py`, `lexicon.py`).
- `extract(text) -> Entities`: plates, vehicles, people, places, coordinates, times,
  weapons, media links (`entities.py`, `patterns.py`).
- `Clusterer`: near-duplicates and reports of one plate → one cluster id (`cluster.py`).
- `classify_lines`: the JSON-lines transformation behind `broadcaster triage classify`.
"""

from broadcaster.triage.cluster import Clusterer
from broadcaster.triage.entities import Entities, extract
from broadcaster.triage.model import CATEGORIES, Triage, classify
from broadcaster.triage.stream import classify_lines

__all__ = [
    "CATEGORIES",
    "Clusterer",
    "Entities",
    "Triage",
    "classify",
    "classify_lines",
    "extract",
]
