"""Offline learning for the triage model: L2 logistic regression (L-BFGS) in numpy.

No I/O here: `tools/train_triage.py` reads the data and writes `model.json`; the CV test calls
the same functions on the copied data. Everything is deterministic (no random draws at all),
so the same data gives the same model, byte for byte.

Contract:
- `fit(rows, labels, sample_weight)` → `{feature: [weight per category]}` plus biases; rows are
  the dicts of `text.features`. Features seen in fewer than `min_count` training rows are
  dropped (they cannot generalise and would bloat the shipped file).
- `leave_one_group_out(...)` → out-of-fold scores: each row scored by a model that never saw
  any row of its group (its event), which is the estimate of how the model does on an event
  it has never seen.
- `choose_threshold(scores, labels, min_precision)` → the lowest threshold (most recall)
  whose precision still meets `min_precision`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
FeatureRow = Mapping[str, float]


@dataclass(frozen=True)
class Fitted:
    """A fitted linear model: weights per feature (one per category) and biases."""

    weights: dict[str, list[float]]
    bias: list[float]

    def score(self, row: FeatureRow) -> list[float]:
        """Probabilities per category for one feature row."""
        totals = list(self.bias)
        for name, value in row.items():
            w = self.weights.get(name)
            if w is not None:
                for k, wk in enumerate(w):
                    totals[k] += wk * value
        return [_sigmoid(t) for t in totals]


@dataclass(frozen=True)
class _Sparse:
    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    data: Floats
    n_features: int

    def dot(self, w: Floats) -> Floats:
        """X @ w for w of shape (n_features, K)."""
        products = self.data[:, None] * w[self.indices]
        sums = np.add.reduceat(products, self.indptr[:-1], axis=0)
        empty = self.indptr[:-1] == self.indptr[1:]
        sums[empty] = 0.0
        return np.asarray(sums, dtype=np.float64)

    def tdot(self, g: Floats) -> Floats:
        """X.T @ g for g of shape (n_rows, K)."""
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        out = np.empty((self.n_features, g.shape[1]))
        for k in range(g.shape[1]):
            out[:, k] = np.bincount(
                self.indices, weights=self.data * g[rows, k], minlength=self.n_features
            )
        return out


def _matrix(rows: Sequence[FeatureRow], vocab: dict[str, int]) -> _Sparse:
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for row in rows:
        for name, value in row.items():
            j = vocab.get(name)
            if j is not None:
                indices.append(j)
                data.append(value)
        indptr.append(len(indices))
    return _Sparse(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(data, dtype=np.float64),
        len(vocab),
    )


def fit(
    rows: Sequence[FeatureRow],
    labels: Sequence[Sequence[int]],
    sample_weight: Sequence[Sequence[float]] | None = None,
    *,
    l2: float = 1.0,
    min_count: int = 2,
    iterations: int = 60,
) -> Fitted:
    """Fit one logistic regression per category (columns of `labels`) jointly."""
    counts: dict[str, int] = {}
    for row in rows:
        for name in row:
            counts[name] = counts.get(name, 0) + 1
    names = sorted(name for name, c in counts.items() if c >= min_count)
    vocab = {name: j for j, name in enumerate(names)}
    x = _matrix(rows, vocab)
    y = np.asarray(labels, dtype=np.float64)
    n_cat = y.shape[1]
    sw = np.ones(y.shape) if sample_weight is None else np.asarray(sample_weight, float)
    total = sw.sum(axis=0)

    def loss_grad(flat: Floats) -> tuple[float, Floats]:
        w = flat[:-n_cat].reshape(len(vocab), n_cat)
        b = flat[-n_cat:]
        z = x.dot(w) + b
        # log(1 + e^z) - y z, computed stably.
        loss = float(((sw * (np.logaddexp(0.0, z) - y * z)).sum(axis=0) / total).sum())
        loss += 0.5 * l2 * float(((w * w).sum(axis=0) / total).sum())
        g = sw * (_sigmoid_array(z) - y) / total
        grad_w = x.tdot(g) + l2 * w / total
        return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    flat = _lbfgs(loss_grad, np.zeros(len(vocab) * n_cat + n_cat), iterations)
    w = flat[:-n_cat].reshape(len(vocab), n_cat)
    weights = {
        name: [round(float(v), 4) for v in w[j]]
        for name, j in vocab.items()
        if float(np.abs(w[j]).max()) >= 1e-3
    }
    return Fitted(weights=weights, bias=[round(float(v), 4) for v in flat[-n_cat:]])


def leave_one_group_out(
    rows: Sequence[FeatureRow],
    labels: Sequence[Sequence[int]],
    groups: Sequence[str],
    *,
    extra_rows: Sequence[FeatureRow] = (),
    extra_labels: Sequence[Sequence[int]] = (),
    extra_groups: Sequence[str] = (),
    extra_weights: Sequence[Sequence[float]] = (),
    l2: float = 1.0,
) -> list[list[float]]:
    """Out-of-fold scores per row.

    `extra_*` are training-only rows (silver or weakly labelled posts), each weighted per
    category by its `extra_weights` row (0 for a category its source says nothing about);
    those of the held-out group are left out of that fold's training too, so no text of the
    held-out event leaks in. Only the `rows` are scored.
    """
    scores: list[list[float]] = [[] for _ in rows]
    for held in sorted(set(groups)):
        train = [i for i, g in enumerate(groups) if g != held]
        extra = [i for i, g in enumerate(extra_groups) if g != held]
        n_cat = len(labels[0])
        model = fit(
            [rows[i] for i in train] + [extra_rows[i] for i in extra],
            [labels[i] for i in train] + [extra_labels[i] for i in extra],
            [[1.0] * n_cat] * len(train) + [list(extra_weights[i]) for i in extra],
            l2=l2,
        )
        for i, g in enumerate(groups):
            if g == held:
                scores[i] = model.score(rows[i])
    return scores


def precision_recall(predicted: Sequence[bool], truth: Sequence[int]) -> tuple[float, float]:
    """(precision, recall); 1.0 for an empty denominator."""
    tp = sum(1 for p, t in zip(predicted, truth, strict=True) if p and t)
    fp = sum(1 for p, t in zip(predicted, truth, strict=True) if p and not t)
    fn = sum(1 for p, t in zip(predicted, truth, strict=True) if not p and t)
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def choose_threshold(scores: Sequence[float], truth: Sequence[int], min_precision: float) -> float:
    """The lowest threshold whose precision is still ≥ `min_precision` (0.5 if none is)."""
    best = 0.5
    for t in sorted(set(scores), reverse=True):
        precision, _ = precision_recall([s >= t for s in scores], truth)
        if precision >= min_precision:
            best = t
    return best


def _lbfgs(f: object, x0: Floats, iterations: int, memory: int = 10) -> Floats:
    """Minimise f (returning (value, gradient)) with L-BFGS and a backtracking line search."""
    func = f  # typed loosely above to keep the signature short; always a loss_grad closure
    assert callable(func)
    x = x0
    value, grad = func(x)
    s_list: list[Floats] = []
    y_list: list[Floats] = []
    for _ in range(iterations):
        q = grad.copy()
        alphas = []
        for s, yv in zip(reversed(s_list), reversed(y_list), strict=True):
            a = _dot(s, q) / _dot(yv, s)
            alphas.append(a)
            q -= a * yv
        if s_list:
            q *= _dot(s_list[-1], y_list[-1]) / _dot(y_list[-1], y_list[-1])
        for s, yv, a in zip(s_list, y_list, reversed(alphas), strict=True):
            bq = _dot(yv, q) / _dot(yv, s)
            q += s * (a - bq)
        direction = -q
        step = 1.0
        slope = _dot(grad, direction)
        if slope >= 0:
            direction, slope, s_list, y_list = -grad, -_dot(grad, grad), [], []
        while True:
            new_x = x + step * direction
            new_value, new_grad = func(new_x)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_new, y_new = new_x - x, new_grad - grad
        if _dot(s_new, y_new) > 1e-12:
            s_list.append(s_new)
            y_list.append(y_new)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        converged = abs(value - new_value) < 1e-9 * max(1.0, abs(value))
        x, value, grad = new_x, new_value, new_grad
        if converged:
            break
    return x


def _dot(a: Floats, b: Floats) -> float:
    """a · b without BLAS: on small vectors a threaded BLAS spends 30x the work spinning."""
    return float(np.multiply(a, b).sum())


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _sigmoid_array(z: Floats) -> Floats:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)
