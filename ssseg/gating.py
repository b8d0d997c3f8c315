"""Confidence gates compared on labeled pixels, whatever the confidence comes from (torch-free).

A source's counts are one joint histogram [BINS, C, C] of (score bin, ground truth, prediction). Bins are
uniform in the logit of the score over [-RANGE, RANGE), 1/100 wide: max softmax piles up just below 1, where
bins of the score itself would lump most pixels together, and a learned gate's sigmoid saturates the same way.
Bin k holds logits in [edge_k, edge_k+1) (the last bin everything above), so "score >= threshold_of(k)" keeps
exactly the bins k and up. Everything here is derived from those counts: AUROC, the risk-coverage curve and its
area (AURC), the coverage at a kept-pixel accuracy, and per-class thresholds for a precision target.
"""

from __future__ import annotations

import math

import numpy as np

from ssseg.config import FREE_SOURCES  # noqa: F401 - re-exported: the sources this module measures
from ssseg.metrics import auroc, scores

RANGE = 16.0
BINS = 3200
WIDTH = 2 * RANGE / BINS
ACCURACY_TARGETS = (0.95, 0.97, 0.99)


def threshold_of(k: int) -> float:
    """The score at the lower edge of bin ``k`` (0 for bin 0: it also holds everything below -RANGE)."""
    return 0.0 if k <= 0 else 1.0 / (1.0 + math.exp(-(-RANGE + k * WIDTH)))


def from_top(joint: np.ndarray) -> np.ndarray:
    """kept[k] = the [C, C] confusion of the pixels in bins k and up."""
    return np.cumsum(joint[::-1], 0)[::-1]


def coverage_at(joint: np.ndarray, accuracy: float, names) -> dict:
    """The lowest threshold whose kept pixels are at least ``accuracy`` right: coverage, kept mIoU and, per
    ground-truth class, the share of its pixels kept (the class that would starve)."""
    kept = from_top(joint.astype(np.int64))
    total = kept[0].sum()
    right = np.trace(kept, axis1=1, axis2=2)
    n = kept.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, right / n, 0.0)
    ok = np.nonzero(acc >= accuracy)[0]
    if total == 0 or len(ok) == 0:
        return {"accuracy": accuracy, "threshold": None, "coverage": 0.0, "kept_miou": None, "per_class_share": {},
                "lowest_class": None, "lowest_share": None}
    k = int(ok[0])
    gt_all, gt_kept = kept[0].sum(1), kept[k].sum(1)
    share = {name: float(gt_kept[i] / gt_all[i]) for i, name in enumerate(names) if gt_all[i] > 0}
    low = min(share, key=share.get) if share else None
    return {"accuracy": accuracy, "threshold": threshold_of(k), "coverage": float(n[k] / total),
            "kept_pixel_acc": float(acc[k]), "kept_miou": scores(kept[k], names)["miou"], "per_class_share": share,
            "lowest_class": low, "lowest_share": share[low] if low else None}


def risk_coverage(joint: np.ndarray, points: int = 101) -> tuple[list[dict], float | None]:
    """The risk-coverage curve (thinned to about ``points`` coverages) and its area, AURC: the mean error
    of the kept pixels as the threshold sweeps from the most confident pixel down (lower is better)."""
    kept = from_top(joint.astype(np.int64))
    n = kept.sum((1, 2)).astype(np.float64)
    total = n[0]
    if total == 0:
        return [], None
    wrong = n - np.trace(kept, axis1=1, axis2=2)
    order = np.arange(len(n))[::-1]  # from the top bin down: coverage grows
    cov, risk = n[order] / total, np.divide(wrong[order], n[order], out=np.zeros(len(n)), where=n[order] > 0)
    step = np.diff(np.concatenate([[0.0], cov]))
    aurc = float((risk * step).sum())
    curve, last = [], -1.0
    for c, r, k in zip(cov, risk, order):
        if c > 0 and (c - last >= 1.0 / (points - 1) or k == 0):
            curve.append({"coverage": float(c), "risk": float(r), "threshold": threshold_of(int(k))})
            last = c
    return curve, aurc


def summarize_source(joint: np.ndarray, names, accuracies=ACCURACY_TARGETS) -> dict:
    """Everything ``ssseg eval --gate`` reports of one source."""
    joint = np.asarray(joint, np.int64)
    diag = np.trace(joint, axis1=1, axis2=2)
    curve, aurc = risk_coverage(joint)
    return {"auroc": auroc(diag, joint.sum((1, 2)) - diag), "aurc": aurc,
            "at_accuracy": [coverage_at(joint, a, names) for a in accuracies], "curve": curve}


def per_class_thresholds(joint: np.ndarray, precision: float, names, min_pixels: int = 1) -> dict:
    """For each predicted class, the lowest threshold at which at least ``precision`` of the pixels it keeps
    are right, so each class keeps as much as the target allows. A class that reaches ``precision`` at no
    threshold (or on fewer than ``min_pixels`` pixels) is named in ``unreachable``, one never predicted on these
    images in ``unmeasured``; both get None: never kept, since nothing shows they would be right."""
    kept = from_top(np.asarray(joint, np.int64))
    thresholds: list[float | None] = []
    coverage: dict[str, float | None] = {}
    unreachable, unmeasured = [], []
    kept_total = right_total = 0
    for c, name in enumerate(names):
        predicted = kept[:, :, c].sum(1)  # [B]: pixels predicted c in bins k and up
        right = kept[:, c, c]
        ok = np.nonzero((predicted >= max(min_pixels, 1)) & (right >= precision * predicted))[0]
        if predicted[0] == 0 or len(ok) == 0:
            thresholds.append(None)
            coverage[name] = None if predicted[0] == 0 else 0.0
            (unmeasured if predicted[0] == 0 else unreachable).append(name)
            continue
        k = int(ok[0])
        thresholds.append(threshold_of(k))
        coverage[name] = float(predicted[k] / predicted[0])
        kept_total += int(predicted[k])
        right_total += int(right[k])
    total = int(kept[0].sum())
    return {"precision": precision, "thresholds": thresholds, "coverage": coverage, "unreachable": unreachable,
            "unmeasured": unmeasured, "total_coverage": kept_total / total if total else 0.0,
            "kept_pixel_acc": right_total / kept_total if kept_total else None}


def bin_of(threshold: float) -> int:
    """The bin whose lower edge is ``threshold`` (the inverse of ``threshold_of``)."""
    if threshold <= 0.0:
        return 0
    if threshold >= 1.0:
        return BINS
    return min(BINS, max(0, round((math.log(threshold) - math.log1p(-threshold) + RANGE) / WIDTH)))


def apply_thresholds(joint: np.ndarray, thresholds: list[float | None], names) -> dict:
    """What per-class thresholds chosen elsewhere keep here: total coverage, kept-pixel accuracy and, per
    predicted class, the precision and share of its pixels kept."""
    kept = from_top(np.asarray(joint, np.int64))
    total = int(kept[0].sum())
    n_kept = n_right = 0
    per_class = {}
    for c, (name, t) in enumerate(zip(names, thresholds)):
        predicted = int(kept[0, :, c].sum())
        k = None if t is None else bin_of(t)
        got = 0 if k is None or k >= BINS else int(kept[k, :, c].sum())
        right = 0 if k is None or k >= BINS else int(kept[k, c, c])
        n_kept, n_right = n_kept + got, n_right + right
        per_class[name] = {"share": got / predicted if predicted else None, "precision": right / got if got else None}
    return {"total_coverage": n_kept / total if total else 0.0,
            "kept_pixel_acc": n_right / n_kept if n_kept else None, "per_class": per_class}
