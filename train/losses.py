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
    """Class-weighted cross-entropy, ignore label excluded, mean over the weighted valid pixels."""
    return F.cross_entropy(logits.float(), target.long(), weight=class_weights, ignore_index=IGNORE_INDEX)
