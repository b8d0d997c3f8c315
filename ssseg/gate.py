"""The confidence gate, in one place (torch-free): what it is, how it is applied, how it is fitted and measured.

- **As data**: ``Gate``, model.json's gate read and validated by one reader (``Gate.read``, ``gate_problems``):
  its source, one threshold or a per-class table, the tables export calibrated per precision. ``Gate.choose``
  is the rule every job applies (an option's threshold, else a calibrated table, else model.json's).
- **Applied**: ``kept`` and ``apply``, on numpy arrays (the runtime, the labeler, the report's checks) and torch
  tensors (training's pseudo-label selection) alike; a per-class table is looked up by each pixel's label.
  ssseg-cpp's gate.cpp is the same rule in C++ (its parity test holds the two equal).
- **Fitted and measured** on labeled pixels, whatever the confidence comes from. A source's counts are one joint
  histogram [BINS, C, C] of (score bin, ground truth, prediction). Bins are uniform in the logit of the score
  over [-RANGE, RANGE), 1/100 wide: max softmax piles up just below 1, where bins of the score itself would lump
  most pixels together, and a learned gate's sigmoid saturates the same way. Bin k holds logits in
  [edge_k, edge_k+1) (the last bin everything above), so "score >= threshold_of(k)" keeps exactly the bins k and
  up. Everything is derived from those counts: AUROC, the risk-coverage curve and its area (AURC), the coverage
  at a kept-pixel accuracy, and per-class thresholds for a precision target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssseg.classes import IGNORE_INDEX

# the sources ssseg export offers: declared with its options, which the CLI reads without numpy
from ssseg.config import DEFAULT_TARGET_PRECISION, EXPORT_GATES, FREE_SOURCES  # noqa: F401 - re-exported
from ssseg.errors import ModelError
from ssseg.metrics import auroc, scores

IGNORE_VALUE = IGNORE_INDEX  # the label of pixels the gate does not keep (model.json's gate.ignore_value)
Table = list  # per-class thresholds, one per class: a number in [0, 1], or None for a class never kept


# --- the gate as data ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """model.json's ``gate``: ``available`` False for an ungated model; ``source`` the confidence it gates on
    (aux, adversarial, dual-disc: a confidence net; softmax, margin, entropy: free); ``threshold`` one for every
    class, ``thresholds`` a per-class table used instead of it; ``tables`` the per-class tables export
    calibrated, by precision ("0.97")."""

    available: bool
    source: str | None = None
    threshold: float | None = None
    thresholds: Table | None = None
    tables: dict[str, Table] = field(default_factory=dict)
    ignore_value: int = IGNORE_VALUE

    @classmethod
    def read(cls, gate: Any, num_classes: int, where: Path | str) -> Gate:
        """The gate of a model.json (``where`` names it); a malformed one is a ModelError naming the key."""
        problems = gate_problems(gate, num_classes)
        if problems:
            raise ModelError(f"invalid model.json: {problems[0]}", path=where, fix="re-run ssseg export")
        return cls(available=gate["available"], source=gate.get("kind"), threshold=gate["threshold"],
                   thresholds=gate.get("thresholds"), tables=dict((gate.get("calibration") or {}).get("tables") or {}),
                   ignore_value=gate["ignore_value"])

    def choose(self, threshold: float | None = None, precision: float | None = None,
               where: Path | str = "model.json") -> float | Table | None:
        """The gate a job applies: ``threshold`` for every class, else the per-class table export calibrated for
        ``precision``, else model.json's per-class table, else its threshold; None when ungated (``ssseg label``,
        ``ssseg.Labeler``, ``ssseg bench`` and ssseg-cpp's resolve_gate alike)."""
        if not self.available:
            if threshold is not None or precision is not None:
                from ssseg.errors import ConfigError

                raise ConfigError("a threshold needs a confidence source, and this model has none", path=where,
                                  fix="leave the threshold out for ungated labels, or export with a --gate")
            return None
        if threshold is not None:
            return threshold
        if precision is not None:
            return self.table_for(precision, where)
        return self.thresholds if self.thresholds is not None else self.threshold

    def table_for(self, precision: float, where: Path | str = "model.json") -> Table:
        """The per-class table export calibrated for ``precision``."""
        for p, table in self.tables.items():
            if abs(float(p) - precision) < 1e-9:
                return table
        have = ", ".join(sorted(self.tables)) or "none"
        raise ModelError(f"this model has no per-class thresholds for precision {precision:g} (calibrated: {have})",
                         path=where, fix=f"re-export with --target-precision {precision:g}")


def gate_problems(gate: Any, num_classes: int) -> list[str]:
    """Every way model.json's ``gate`` departs from its schema (ssseg.runtime.model's docstring), each naming
    the key."""
    if not isinstance(gate, dict):
        return ["gate must be an object"]
    problems = []
    for key, kind, what in (("available", bool, "a boolean"), ("ignore_value", int, "an integer")):
        value = gate.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"gate.{key} is missing or not {what}")
    if problems:
        return problems
    threshold = gate.get("threshold")
    if "threshold" not in gate:
        problems.append("missing gate.threshold")
    elif threshold is not None and not _is_unit(threshold):
        problems.append(f"gate.threshold must be a number in [0, 1] or null, not {threshold!r}")
    table = gate.get("thresholds")
    if table is not None:
        problems += _table_problems(table, num_classes, "gate.thresholds")
    calibration = gate.get("calibration")
    tables = calibration.get("tables") if isinstance(calibration, dict) else None
    if calibration is not None and not isinstance(tables, (dict, type(None))):
        problems.append("gate.calibration.tables must be an object of precision: thresholds")
        tables = None
    for p, t in (tables or {}).items():
        problems += _table_problems(t, num_classes, f"gate.calibration.tables[{p}]")
    if gate["available"] and threshold is None and table is None:
        problems.append("a gated model (gate.available true) needs gate.threshold or gate.thresholds")
    return problems


def _is_unit(v: Any) -> bool:
    """A number in [0, 1] (NaN is not; a boolean is no number)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0


def _table_problems(table: Any, n: int, key: str) -> list[str]:
    if not isinstance(table, list) or len(table) != n:
        got = len(table) if isinstance(table, list) else type(table).__name__
        return [f"{key} must hold one entry per class ({n}), not {got}"]
    bad = [(i, t) for i, t in enumerate(table) if t is not None and not _is_unit(t)]
    return [f"{key} must hold {n} numbers in [0, 1] or null, one per class (entry {bad[0][0]} is {bad[0][1]!r})"] \
        if bad else []


# --- the gate applied ------------------------------------------------------------------------------------

def threshold_table(thresholds: Table) -> np.ndarray:
    """A per-class table as float32 (as the confidence is compared in both runtimes), +inf for a class never
    kept, padded to 256 entries so any uint8 label indexes it."""
    out = np.full(256, np.inf, np.float32)
    out[: len(thresholds)] = [np.inf if t is None else t for t in thresholds]
    return out


def describe(choice: float | Table | None) -> str:
    """``Gate.choose``'s answer as the label job's first line says it (ssseg-cpp's GateChoice::describe says it
    in its own words)."""
    if choice is None:
        return "ungated (no confidence net)"
    return "per-class confidence thresholds" if isinstance(choice, list) else f"confidence >= {choice:g}"


def applied(choice: float | Table | None) -> float | np.ndarray | None:
    """``Gate.choose``'s answer as ``kept`` takes it: a number, or a per-class table as an array."""
    return threshold_table(choice) if isinstance(choice, list) else choice


def kept(confidence: Any, threshold: Any, labels: Any = None) -> Any:
    """Where the confidence reaches ``threshold``: one number, or a per-class table (an array of the labels'
    own kind, ``threshold_table``) looked up by each pixel's label."""
    if labels is not None and getattr(threshold, "ndim", 0) > 0:  # a table (numpy or torch), not a number
        threshold = threshold[labels]
    return confidence >= threshold


def apply(labels: Any, confidence: Any, threshold: Any, ignore: int = IGNORE_VALUE) -> Any:
    """The labels with ``ignore`` where the gate does not keep them: uint8 for numpy arrays, the same dtype for
    torch tensors."""
    keep = kept(confidence, threshold, labels)
    if isinstance(labels, np.ndarray):
        return np.where(keep, labels, np.uint8(ignore)).astype(np.uint8)
    return labels.masked_fill(~keep, ignore)


# --- the gate fitted and measured --------------------------------------------------------------------------

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
