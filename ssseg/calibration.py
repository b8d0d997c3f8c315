"""Counting every confidence source of a segmenter on labeled pixels (torch side of ssseg.gate): shared by
``ssseg eval --gate`` and the per-class thresholds ``ssseg export --target-precision`` writes into model.json."""

from __future__ import annotations

import numpy as np
import torch

from ssseg import gate
from ssseg.classes import IGNORE_INDEX


class SourceCounts:
    """Every confidence source of one segmenter on the same pixels: per source the joint histogram of
    ssseg.gate (logit bin, ground truth, prediction)."""

    def __init__(self, num_classes: int, sources: tuple[str, ...], device: torch.device):
        self.num_classes, self.sources = num_classes, sources
        self.joint = {s: torch.zeros(gate.BINS * num_classes ** 2, dtype=torch.int64, device=device)
                      for s in sources}

    def add(self, logits: dict[str, torch.Tensor], pred: torch.Tensor, target: torch.Tensor) -> None:
        """``logits``: per source the logit of its confidence, shaped like ``target``."""
        c = self.num_classes
        valid = target != IGNORE_INDEX
        pair = target[valid].long() * c + pred[valid].long()
        for name, z in logits.items():
            z = z.float().reshape(target.shape)[valid]
            b = ((z.clamp(-gate.RANGE, gate.RANGE) + gate.RANGE) / gate.WIDTH).floor().long()
            self.joint[name] += torch.bincount(b.clamp_(0, gate.BINS - 1) * (c * c) + pair,
                                               minlength=gate.BINS * c * c)

    def reduce(self, all_reduce_sum) -> None:
        """Sum across processes with ``all_reduce_sum(tensor)``."""
        for t in self.joint.values():
            all_reduce_sum(t)

    def summary(self, names) -> dict:
        c = self.num_classes
        return {s: gate.summarize_source(j.cpu().numpy().reshape(gate.BINS, c, c), names)
                for s, j in self.joint.items()}

    def joint_of(self, source: str) -> np.ndarray:
        return self.joint[source].cpu().numpy().reshape(gate.BINS, self.num_classes, self.num_classes)


def score_logit(score: torch.Tensor) -> torch.Tensor:
    """The logit of a confidence in [0, 1], finite at 0 and 1 (clamped into the histogram's range)."""
    s = score.double()
    return (torch.log(s) - torch.log1p(-s)).clamp(-gate.RANGE, gate.RANGE)
