"""Triage quality on the development set, estimated by leave-one-event-out CV."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from broadcaster.triage import learn
from broadcaster.triage.model import CATEGORIES, packaged_model

DATA = Path(__file__).resolve().parent.parent / "data" / "triage"
TOOL = Path(__file__).resolve().parent.parent.parent / "tools" / "train_triage.py"
TARGET_PRECISION = 0.80
TARGET_RECALL = 0.90


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_triage", TOOL)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cv_figures() -> dict[str, tuple[float, float]]:
    """(precision, recall) per category of the shipped recipe's leave-one-event-out CV."""
    tool = _tool()
    dev, extra = tool.load(DATA)
    oof = tool.cross_validate(dev, extra)
    thresholds = packaged_model().thresholds
    figures = {}
    for k, category in enumerate(CATEGORIES):
        truth = [int(post[category]) for post in dev]
        predicted = [score[k] >= thresholds[category] for score in oof]
        figures[category] = learn.precision_recall(predicted, truth)
        print(
            f"{category}: LOEO CV precision {figures[category][0]:.3f} "
            f"recall {figures[category][1]:.3f}"
        )
    return figures


@pytest.mark.xfail(
    strict=True,
    reason="below target: LOEO CV precision is 0.636 (suspect, recall 0.941) and 0.634 (hazard, "
    "recall 0.923) with the thresholds' margin for new events (0.74 and 0.67 at a bare recall "
    "0.90), target 0.80; see README 'Triage'",
)
def test_leave_one_event_out_precision_and_recall_meet_targets(
    cv_figures: dict[str, tuple[float, float]],
) -> None:
    """Retrains per held-out event (the shipped recipe), prints and checks P/R per category."""
    failures = [
        f"{category} P={precision:.3f} R={recall:.3f}"
        for category, (precision, recall) in cv_figures.items()
        if precision < TARGET_PRECISION or recall < TARGET_RECALL
    ]
    for category, (precision, recall) in cv_figures.items():
        print(f"{category}: LOEO CV precision {precision:.3f} recall {recall:.3f}")
    assert not failures, "below targets: " + "; ".join(failures)


def test_shipped_model_matches_its_recorded_cv(
    cv_figures: dict[str, tuple[float, float]],
) -> None:
    """model.json's recorded CV figures are what the training recipe reproduces."""
    recorded = packaged_model().meta["cv"]
    for category, (precision, recall) in cv_figures.items():
        assert (round(precision, 3), round(recall, 3)) == (
            recorded[category]["precision"],
            recorded[category]["recall"],
        )
