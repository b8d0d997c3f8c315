"""Measuring a confidence gate on labeled images (the paper's Tables 3-4): feed the images through the
segmenter and the auxiliary net, and count, per threshold, what the kept pixels are worth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ssseg import gate
from ssseg.calibration import SourceCounts, score_logit
from ssseg.classes import IGNORE_INDEX
from ssseg.data import SegDataset
from ssseg.metrics import auroc, expected_calibration_error, gate_scores, reliability, scores
from ssseg.models.confidence import free_confidence
from ssseg.train.data import EvalSet, Norm, normalize
from ssseg.train.distributed import DistInfo, all_reduce_sum

CONF_BINS = 100  # 0.01-wide confidence bins: the coverage curve and the reliability table
LOGIT_BINS = 3200  # 0.01-wide bins of the confidence logit over [-16, 16]: AUROC without saturation ties
LOGIT_RANGE = 16.0


@dataclass
class GateCounts:
    """Sufficient statistics of a gate on a labeled set (all torch int64/float64 on one device)."""

    num_classes: int
    thresholds: tuple[float, ...]
    device: torch.device
    kept: torch.Tensor = field(init=False)  # [T, C, C] confusion of pixels with confidence >= threshold
    joint: torch.Tensor = field(init=False)  # [CONF_BINS, C, C]
    conf_sum: torch.Tensor = field(init=False)  # [CONF_BINS]
    logit_hist: torch.Tensor = field(init=False)  # [LOGIT_BINS, 2] (wrong, right)

    def __post_init__(self) -> None:
        c, d = self.num_classes, self.device
        self.kept = torch.zeros(len(self.thresholds), c * c, dtype=torch.int64, device=d)
        self.joint = torch.zeros(CONF_BINS * c * c, dtype=torch.int64, device=d)
        self.conf_sum = torch.zeros(CONF_BINS, dtype=torch.float64, device=d)
        self.logit_hist = torch.zeros(LOGIT_BINS * 2, dtype=torch.int64, device=d)

    def add(self, aux_logits: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
        c = self.num_classes
        valid = target != IGNORE_INDEX
        z = aux_logits.float().reshape(target.shape)[valid]
        t, p = target[valid].long(), pred[valid].long()
        conf = torch.sigmoid(z)
        pair = t * c + p
        for k, thr in enumerate(self.thresholds):
            self.kept[k] += torch.bincount(pair[conf >= thr], minlength=c * c)
        b = (conf * CONF_BINS).long().clamp_(0, CONF_BINS - 1)
        self.joint += torch.bincount(b * (c * c) + pair, minlength=CONF_BINS * c * c)
        self.conf_sum += torch.bincount(b, weights=conf.double(), minlength=CONF_BINS)
        zb = ((z.clamp(-LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE)
              * ((LOGIT_BINS - 1) / (2 * LOGIT_RANGE))).round().long()
        self.logit_hist += torch.bincount(zb * 2 + (t == p).long(), minlength=LOGIT_BINS * 2)

    def reduce(self, info: DistInfo) -> None:
        for name in ("kept", "joint", "conf_sum", "logit_hist"):
            all_reduce_sum(getattr(self, name), info)

    def summary(self, names: list[str] | tuple[str, ...]) -> dict:
        """Plain-JSON result: per threshold the Table 3 measures, AUROC, a 10-bin reliability table and the
        coverage vs kept-pixel mIoU curve over thresholds 0, 0.01, ..., 0.99."""
        c = self.num_classes
        kept = self.kept.cpu().numpy().reshape(-1, c, c)
        joint = self.joint.cpu().numpy().reshape(CONF_BINS, c, c)
        everything = joint.sum(0)
        hist = self.logit_hist.cpu().numpy().reshape(LOGIT_BINS, 2)
        table = reliability(joint, self.conf_sum.cpu().numpy(), bins=10)
        from_top = np.cumsum(joint[::-1], 0)[::-1]  # from_top[b] = pixels with confidence >= b / CONF_BINS
        total = everything.sum()
        curve = []
        for b in range(CONF_BINS):
            s = scores(from_top[b], names)
            n = from_top[b].sum()
            curve.append({"threshold": b / CONF_BINS, "coverage": float(n / total) if total else 0.0,
                          "kept_miou": s["miou"] if n else None, "kept_pixel_acc": s["pixel_acc"] if n else None})
        overall = scores(everything, names)
        return {
            "pixels": int(total),
            "segmenter_miou": overall["miou"],
            "segmenter_pixel_acc": overall["pixel_acc"],
            "auroc": auroc(hist[:, 1], hist[:, 0]),
            "ece": expected_calibration_error(table),
            "gates": [{"threshold": t, **gate_scores(kept[k], everything, names)}
                      for k, t in enumerate(self.thresholds)],
            "reliability": table,
            "curve": curve,
        }


@torch.no_grad()
def gate_counts(segmenter: torch.nn.Module, aux: torch.nn.Module | None, ds: SegDataset,
                scale: tuple[int, int] | None, device: torch.device, thresholds: tuple[float, ...],
                info: DistInfo = DistInfo(), workers: int = 0, amp: bool = False, gater_name: str = "gater",
                compare: bool = True, primary: str | None = None) -> tuple[GateCounts, SourceCounts | None]:
    """The Table 3 counts of the ``primary`` source (default: the gater) and, with ``compare``, every source's
    histogram (the gater's and the free ones), in one pass."""
    modes = segmenter.training, aux.training if aux is not None else None
    segmenter.eval()
    if aux is not None:
        aux.eval()
    c = ds.classes.num_classes
    primary = primary or gater_name
    counts = GateCounts(c, tuple(thresholds), device)
    sources = SourceCounts(c, ((gater_name,) if aux is not None else ()) + gate.FREE_SOURCES, device) \
        if compare else None
    shard = torch.utils.data.Subset(EvalSet(ds, scale), range(info.rank, len(ds), info.world_size))
    for images, labels in torch.utils.data.DataLoader(shard, batch_size=1, num_workers=workers):
        x = normalize(images, device, Norm.of(segmenter))
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = segmenter(x)
        probs = torch.softmax(logits.float(), 1)
        pred, target = logits.argmax(1), labels.to(device)
        free = gate.FREE_SOURCES if compare else tuple(s for s in gate.FREE_SOURCES if s == primary)
        z = {k: score_logit(free_confidence(probs, k)) for k in free}
        if aux is not None:
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                z[gater_name] = aux(probs, x if aux.with_rgb else None)
        counts.add(z[primary], pred, target)
        if sources is not None:
            sources.add(z, pred, target)
    counts.reduce(info)
    if aux is not None:
        aux.train(modes[1])
    if sources is not None:
        sources.reduce(lambda t: all_reduce_sum(t, info))
    segmenter.train(modes[0])
    return counts, sources
