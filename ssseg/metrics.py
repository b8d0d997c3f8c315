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
