"""Losses and class weighting (pure helpers)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ssseg.classes import IGNORE_INDEX


def enet_class_weights(pixel_counts: np.ndarray, c: float = 1.1) -> np.ndarray:
    """ENet weighting w = 1 / ln(c + p_class), p_class = the class's share of non-ignore pixels."""
    counts = np.asarray(pixel_counts, np.float64)
    total = counts.sum()
    p = counts / total if total > 0 else np.zeros_like(counts)
    return (1.0 / np.log(c + p)).astype(np.float32)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    """Class-weighted cross-entropy, ignore label excluded, mean over the weighted valid pixels.

    torch's "mean" divides by the weight sum, which is 0/0 = NaN for a batch with no valid pixel (a strict
    gate can ignore whole pseudo-labeled images); here such a batch gives 0 and no gradient."""
    target = target.long()
    total = F.cross_entropy(logits.float(), target, weight=class_weights, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = target[target != IGNORE_INDEX]
    denom = class_weights[valid].sum() if class_weights is not None else torch.tensor(float(valid.numel()), device=logits.device)
    return total / denom.clamp(min=1e-12)


# --- the auxiliary (confidence) network, paper eq. (1) ----------------------------------------------

def aux_targets(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 1 where the segmenter's arg-max equals the ground truth, 0 where it differs; ``valid`` excludes ignore."""
    valid = target != IGNORE_INDEX
    return ((pred == target) & valid).float(), valid


def aux_gamma(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """gamma = #negative / #positive per ground-truth class, counted in the auxiliary targets.

    A class with no positive or no negative pixels gives no evidence to rebalance with; it gets 1 (plain
    BCE) instead of the formula's inf or 0, which would blow up, or silence, the class when augmentation
    produces the rare pixel the count did not see."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    gamma = np.ones_like(pos)
    both = (pos > 0) & (neg > 0)
    gamma[both] = neg[both] / pos[both]
    return gamma.astype(np.float32)


def aux_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor,
             gamma: torch.Tensor) -> torch.Tensor:
    """Paper eq. (1): -sum W (gamma y log a + (1 - y) log(1 - a)), a = sigmoid(logits), W and gamma picked
    by the ground-truth class; divided by the number of valid pixels so the scale does not depend on the
    batch or image size (the optimum is the same). log a = -softplus(-z) and log(1 - a) = -softplus(z)
    keep it finite for any logit."""
    z = logits.float().squeeze(1)
    valid = target != IGNORE_INDEX
    cls = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    w, g = class_weight[cls], gamma[cls]
    per_pixel = w * (g * y * F.softplus(-z) + (1.0 - y) * F.softplus(z))
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)
