"""Segmentation metrics from a confusion matrix (numpy only; shared by eval, training and labeling)."""

from __future__ import annotations

import numpy as np

from ssseg.classes import IGNORE_INDEX


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows = ground truth, columns = prediction; ignore pixels excluded."""
    keep = target != IGNORE_INDEX
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(conf: np.ndarray, names: list[str] | tuple[str, ...]) -> dict:
    """mIoU over the classes that occur (in ground truth or prediction), per-class IoU, pixel accuracy."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = conf.sum()
    present = ~np.isnan(iou)
    return {
        "miou": float(np.mean(iou[present])) if present.any() else 0.0,
        "pixel_acc": float(tp.sum() / total) if total else 0.0,
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
        "pixels": int(total),
    }


# --- how well a confidence map separates right from wrong pixels (numpy, shared with ``ssseg label``) ----

def auroc(right: np.ndarray, wrong: np.ndarray) -> float | None:
    """Area under the ROC curve of confidence vs correctness from per-bin counts (bins ordered by
    confidence); ties inside a bin count one half. None when either side is empty."""
    right, wrong = np.asarray(right, np.float64), np.asarray(wrong, np.float64)
    n_right, n_wrong = right.sum(), wrong.sum()
    if n_right == 0 or n_wrong == 0:
        return None
    wrong_below = np.cumsum(wrong) - wrong
    return float((right * (wrong_below + 0.5 * wrong)).sum() / (n_right * n_wrong))


def reliability(joint: np.ndarray, conf_sum: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability table: per confidence bin, pixels, mean confidence and the share the segmenter got right.
    ``joint`` is [B, C, C] (confidence bin, ground truth, prediction) with B a multiple of ``bins``."""
    b = joint.shape[0]
    group = b // bins
    right = np.trace(joint, axis1=1, axis2=2).reshape(bins, group).sum(1)
    total = joint.sum((1, 2)).reshape(bins, group).sum(1)
    csum = np.asarray(conf_sum, np.float64).reshape(bins, group).sum(1)
    rows = []
    for i in range(bins):
        n = int(total[i])
        rows.append({"bin": [i / bins, (i + 1) / bins], "pixels": n,
                     "mean_confidence": float(csum[i] / n) if n else None,
                     "accuracy": float(right[i] / n) if n else None})
    return rows


def expected_calibration_error(rows: list[dict]) -> float | None:
    total = sum(r["pixels"] for r in rows)
    if not total:
        return None
    return float(sum(r["pixels"] * abs(r["accuracy"] - r["mean_confidence"]) for r in rows if r["pixels"]) / total)


def gate_scores(kept: np.ndarray, everything: np.ndarray, names: list[str] | tuple[str, ...]) -> dict:
    """The paper's Table 3 measures for one threshold: mIoU of the kept pixels against ground truth, the
    average class semi ratio (kept pixels of a ground-truth class / all its pixels, averaged over the
    classes present), the selected-pixel share, and per class IoU and semi ratio."""
    s = scores(kept, names)
    gt_all = everything.sum(1).astype(np.float64)
    gt_kept = kept.sum(1).astype(np.float64)
    present = gt_all > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(present, gt_kept / gt_all, np.nan)
    total = everything.sum()
    any_kept = kept.sum() > 0
    return {
        "kept_miou": s["miou"] if any_kept else None,
        "kept_pixel_acc": s["pixel_acc"] if any_kept else None,
        "class_semi_ratio": float(np.nanmean(ratio)) if present.any() else 0.0,
        "selected_share": float(kept.sum() / total) if total else 0.0,
        "per_class": {n: {"iou": s["per_class_iou"][n], "semi_ratio": None if np.isnan(r) else float(r)}
                      for n, r in zip(names, ratio)},
    }
