"""--method weak-strong: online weak-to-strong consistency (FixMatch for segmentation; UniMatch's feature
perturbation; the ST++ strong view). Every step takes a labeled batch and an unlabeled one:

    teacher   the student's EMA (--ema-decay) labels the weakly augmented unlabeled view (flip, scale, crop)
    select    which of its pixels count (--select): max softmax >= --select-threshold; class-balanced, the same
              with a per-class threshold lowered until --min-class-share of each predicted class passes; or a
              trained confidence net (the paper's auxiliary net, --select-gater) at --t-aux
    student   L_x: the labeled batch (weak augmentation, class-weighted cross-entropy)
              L_s: the teacher's selected labels on the strong view (colour jitter, grayscale, blur, then CutMix
                   between the unlabeled images, their labels mixed with the same boxes)
              L_fp: the same labels on the weak view through the decoder with half the channels of every
                   encoder feature dropped (feature perturbation)
              L = L_x + lambda_u (L_s + L_fp) / 2
    warm-up   the first --unlabeled-warmup share of the steps train on L_x alone; the teacher then starts as a
              copy of the student (from scratch, an early teacher's labels only teach its own mistakes)

metrics.jsonl records per epoch which share of each (predicted) class's unlabeled pixels passed the selection."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssseg.classes import IGNORE_INDEX
from ssseg.gate import kept
from ssseg.models import create_model
from ssseg.models.layers import pad_to_multiple
from ssseg.rundir import RunDir
from ssseg.train import distributed as dist
from ssseg.train.data import ImagesOnly, TrainSet, default_crop, endless, normalize, standardize, to_unit, train_loader
from ssseg.train.distributed import wrap_ddp
from ssseg.train.evaluate import frozen
from ssseg.train.losses import enet_class_weights, segmentation_loss
from ssseg.train.methods.self_train import ema_update
from ssseg.train.methods.supervised import validate_segmenter
from ssseg.train.mix import cutmix, cutmix_boxes, dropout_masks, photometric, step_generator, strong_labeled
from ssseg.train.optim import new_segmenter, segmenter_optim
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.task import Method, Stage, Task


class PerturbedSegmenter(nn.Module):
    """The segmenter on a batch whose images ``fp`` (a slice) also go through the decoder with their encoder
    features channel-dropped: one forward for both paths, so DistributedDataParallel sees one pass per step."""

    def __init__(self, segmenter: nn.Module):
        super().__init__()
        self.seg = segmenter

    def forward(self, x: torch.Tensor, fp: slice, masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        feats = self.seg.encode(pad_to_multiple(x, self.seg.stride))
        both = [torch.cat([f, f[fp] * m]) for f, m in zip(feats, masks)]
        logits = self.seg.decode(both)[..., :h, :w]
        return logits[: len(x)], logits[len(x):]


def select_class_balanced(conf: torch.Tensor, pred: torch.Tensor, valid: torch.Tensor, threshold: float,
                          min_share: float, num_classes: int) -> torch.Tensor:
    """Pixels at or above ``threshold``, plus, for each predicted class of which fewer than ``min_share`` of its
    valid pixels pass, its most confident pixels up to that share: no class present is starved."""
    keep = kept(conf, threshold) & valid
    for c in range(num_classes):
        mine = (pred == c) & valid
        n = int(mine.sum())
        need = math.ceil(min_share * n)
        if n == 0 or int((keep & mine).sum()) >= need:
            continue
        kth = torch.topk(conf[mine], need).values[-1]
        keep |= mine & (conf >= kth)
    return keep


def unlabeled_loss(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the selected pixels, divided by all valid ones (FixMatch/UniMatch): fewer selected
    pixels weigh less instead of being scaled up."""
    per = F.cross_entropy(logits.float(), torch.where(keep, target, torch.full_like(target, IGNORE_INDEX)),
                          ignore_index=IGNORE_INDEX, reduction="sum")
    return per / valid.sum().clamp(min=1)


class WeakStrongTask(Task):
    def __init__(self, run: Run, unlabeled):
        super().__init__(run, run.labeled, run.cfg.epochs)
        self.unlabeled = unlabeled

    def prepare(self) -> None:
        weights = enet_class_weights(self.run.pixel_counts, self.cfg.class_weight_c)
        self.class_weights = torch.from_numpy(weights).to(self.device)
        self.gater = None
        if self.cfg.select == "aux":
            path = Path(self.cfg.select_gater)
            self.gater = frozen(RunDir(path).latest_gater() if path.is_dir() else path, self.device)

    def build(self) -> None:
        cfg = self.cfg
        self.model_name, self.model_kwargs = cfg.model, {"num_classes": self.run.classes.num_classes}
        self.model = new_segmenter(cfg, self.run.classes.num_classes, self.device, log=self.run.log)
        self.teacher = create_model(cfg.model, **self.model_kwargs).to(self.device).eval()
        self.teacher.load_state_dict(self.model.state_dict())
        self.teacher.requires_grad_(False)
        self.optims = {"loss": segmenter_optim(self.model, cfg)}
        self.state = {"teacher": self.teacher}
        self.channels = list(self.model.feature_channels)

    def start(self, state: dict) -> None:
        self.net = wrap_ddp(PerturbedSegmenter(self.model), self.run.info)

    def begin(self, iteration: int, per_epoch: int) -> None:
        cfg = self.cfg
        self.batch_u = cfg.unlabeled_batch or cfg.batch_size
        self.warmup = round(cfg.unlabeled_warmup * self.epochs * per_epoch)
        images = TrainSet(ImagesOnly(self.unlabeled), cfg, default_crop(self.run.labeled, cfg))
        sampler, loader = train_loader(images, cfg, self.run.info, self.batch_u)
        # (images, 255 where padded); the unlabeled batches count from the end of the warm-up
        self.u_iter = endless(loader, sampler, max(0, iteration - self.warmup))

    def train(self) -> None:
        self.net.train()
        n = self.run.classes.num_classes
        self.seen = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.kept = torch.zeros(n, dtype=torch.float64, device=self.device)

    def select(self, conf, pred, probs, x_weak, valid) -> torch.Tensor:
        cfg = self.cfg
        if cfg.select == "aux":
            with torch.no_grad():
                trust = torch.sigmoid(self.gater(probs, x_weak if self.gater.with_rgb else None).float())[:, 0]
            return kept(trust, cfg.t_aux) & valid
        if cfg.select == "softmax":
            return kept(conf, cfg.select_threshold) & valid
        return select_class_balanced(conf, pred, valid, cfg.select_threshold, cfg.min_class_share,
                                     self.run.classes.num_classes)

    def step(self, batch, iteration):
        cfg, device, amp = self.cfg, self.device, self.run.amp
        images, labels = batch
        xl, yl = normalize(images, device, self.run.norm), labels.to(device, non_blocking=True)
        g = step_generator(cfg.seed, iteration)
        if cfg.strong_aug:  # the labeled batch as the supervised twin sees it
            unit, yl = strong_labeled(to_unit(images, device), yl, g)
            xl = standardize(unit, self.run.norm)
        self.warming = iteration < self.warmup
        if self.warming:
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits, _ = self.net(xl, slice(0, 0), [torch.ones(0, c, 1, 1, device=device) for c in self.channels])
            l_x = segmentation_loss(logits, yl, self.class_weights)
            zero = torch.zeros((), device=device)
            return {"loss": l_x, "l_x": l_x, "l_s": zero, "l_fp": zero, "selected": zero}
        if iteration == self.warmup:
            self.teacher.load_state_dict(self.model.state_dict())
        u_images, u_pad = next(self.u_iter)
        valid = u_pad.to(device) != IGNORE_INDEX  # padding of small scales is not an image pixel

        # the teacher's labels on the weak view, and which pixels count
        weak = to_unit(u_images, device)
        xw = standardize(weak, self.run.norm)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            t_logits = self.teacher(xw)
        probs = torch.softmax(t_logits.float(), 1)
        conf, pred = probs.max(1)
        keep = self.select(conf, pred, probs, xw, valid)
        self.count(pred, keep, valid)

        # the strong view: colours, then CutMix with the previous image (labels, selection, validity alike)
        boxes = cutmix_boxes(len(weak), *weak.shape[-2:], g)
        xs = standardize(cutmix(photometric(weak, g), boxes), self.run.norm)
        pred_s, keep_s, valid_s = cutmix(pred, boxes), cutmix(keep, boxes), cutmix(valid, boxes)
        masks = dropout_masks(self.channels, len(weak), g, device)

        nl, nu = len(xl), len(weak)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits, fp_logits = self.net(torch.cat([xl, xs, xw]), slice(nl + nu, nl + 2 * nu), masks)
        l_x = segmentation_loss(logits[:nl], yl, self.class_weights)
        l_s = unlabeled_loss(logits[nl:nl + nu], pred_s, keep_s, valid_s)
        l_fp = unlabeled_loss(fp_logits, pred, keep, valid)
        loss = l_x + cfg.lambda_u * 0.5 * (l_s + l_fp)
        return {"loss": loss, "l_x": l_x, "l_s": l_s, "l_fp": l_fp,
                "selected": (keep.sum() / valid.sum().clamp(min=1)).float()}

    def count(self, pred: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor) -> None:
        n = self.run.classes.num_classes
        self.seen += torch.bincount(pred[valid], minlength=n)[:n].double()
        self.kept += torch.bincount(pred[keep], minlength=n)[:n].double()

    def after_step(self) -> None:
        if not self.warming:
            ema_update(self.teacher, self.model, self.cfg.ema_decay)

    def evaluate(self):
        return validate_segmenter(self, self.model)

    def end_epoch(self) -> None:
        seen, kept = (dist.all_reduce_sum(t.clone(), self.run.info).tolist() for t in (self.seen, self.kept))
        self.pass_share = {name: (k / s if s else None) for name, s, k in zip(self.run.classes.names, seen, kept)}

    def epoch_fields(self, iteration: int) -> dict:
        return {"pass_share": self.pass_share}

    def epoch_note(self, iteration: int) -> str:
        shares = [v for v in self.pass_share.values() if v is not None]
        return f"  lowest class pass share {100 * min(shares):.0f}%" if shares else ""

    def describe(self) -> str:
        cfg = self.cfg
        rule = {"aux": f"auxiliary net >= {cfg.t_aux:g}", "softmax": f"max softmax >= {cfg.select_threshold:g}",
                "class-balanced": f"max softmax >= {cfg.select_threshold:g}, at least {cfg.min_class_share:g} of "
                                  f"each class"}[cfg.select]
        return (f"--method weak-strong on {len(self.run.labeled)} labeled + {len(self.unlabeled)} unlabeled images "
                f"(sub-batches of {cfg.batch_size} + {self.batch_u}), selection: {rule}, lambda_u {cfg.lambda_u:g}, "
                f"EMA {cfg.ema_decay:g}, labeled only for the first {cfg.unlabeled_warmup:g} of the steps")


@register("weak-strong")
class WeakStrong(Method):
    def stages(self, run: Run) -> list[Stage]:
        unlabeled = run.unlabeled()
        return [Stage(0, self.name, lambda out: WeakStrongTask(run, unlabeled))]
