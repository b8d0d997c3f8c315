"""--method supervised: the segmenter on the labeled images alone, every method's baseline. ``SegmenterTask`` is
also stage 1 of the staged methods and stage 3 of --method aux."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.checkpoint import load_checkpoint
from ssseg.data import SegDataset
from ssseg.io import write_json
from ssseg.metrics import scores
from ssseg.models import count_macs, count_parameters, create_model
from ssseg.rundir import CLASS_WEIGHTS_FILE
from ssseg.train.data import normalize, standardize, to_unit
from ssseg.train.distributed import wrap_ddp
from ssseg.train.evaluate import confusion_matrix
from ssseg.train.losses import enet_class_weights, segmentation_loss
from ssseg.train.mix import step_generator, strong_labeled
from ssseg.train.optim import new_segmenter, segmenter_optim
from ssseg.train.registry import register
from ssseg.train.setup import Run
from ssseg.train.task import Method, Stage, Task


def model_summary(name: str, num_classes: int) -> dict:
    """Parameter count and multiply-accumulates at the paper's 512x1024, measured on the meta device."""
    with torch.device("meta"):
        m = create_model(name, num_classes=num_classes)
        macs = count_macs(m, torch.zeros(1, 3, 512, 1024))
    return {"params": count_parameters(m), "gmacs_512x1024": macs / 1e9}


def validate_segmenter(task: Task, model: torch.nn.Module) -> tuple[float | None, dict | None, str]:
    """A segmenter's val scores for Task.evaluate: mIoU decides best.pt."""
    run = task.run
    if run.val is None:
        return None, None, ""
    conf = confusion_matrix(model, run.val, task.cfg.scale, task.device, run.info, amp=run.amp)
    s = scores(conf, run.val.classes.names)
    return s["miou"], {k: s[k] for k in ("miou", "pixel_acc", "per_class_iou")}, f"  val mIoU {100 * s['miou']:.1f}"


class SegmenterTask(Task):
    """The segmenter on ``data`` with the ENet-weighted cross-entropy, SGD; ``init`` starts it from a checkpoint."""

    def __init__(self, run: Run, out: Path, data: SegDataset, pixel_counts: np.ndarray, *, what: str,
                 init: Path | None = None, stage: int | None = None, epochs: int | None = None):
        super().__init__(run, data, epochs or run.cfg.epochs)
        self.out, self.pixel_counts, self.what, self.init, self.stage = out, pixel_counts, what, init, stage

    def prepare(self) -> None:
        self.weights = enet_class_weights(self.pixel_counts, self.cfg.class_weight_c)
        if self.run.info.is_main:
            classes = self.run.classes
            write_json(self.out / CLASS_WEIGHTS_FILE, {
                "classes": list(classes.names), "pixels": self.pixel_counts.tolist(), "weights": self.weights.tolist(),
                "c": self.cfg.class_weight_c})

    def build(self) -> None:
        cfg, classes = self.cfg, self.run.classes
        self.model_name, self.model_kwargs = cfg.model, {"num_classes": classes.num_classes}
        self.model = new_segmenter(cfg, classes.num_classes, self.device, pretrained=self.init is None,
                                   log=self.run.log)
        summary = model_summary(cfg.model, classes.num_classes)
        self.run.log(f"model {cfg.model}: {summary['params'] / 1e6:.2f}M parameters, "
                     f"{summary['gmacs_512x1024']:.1f} GMACs ({2 * summary['gmacs_512x1024']:.1f} GFLOPs) at 512x1024, "
                     f"{classes.num_classes} classes")
        self.optims = {"loss": segmenter_optim(self.model, cfg)}

    def start(self, state: dict) -> None:
        if not state and self.init is not None:
            self.model.load_state_dict(load_checkpoint(self.init, self.device)["state_dict"])
            self.run.log(f"initialised from {self.init}")
        self.net = wrap_ddp(self.model, self.run.info)
        self.class_weights = torch.from_numpy(self.weights).to(self.device)

    def step(self, batch, iteration):
        images, labels = batch
        x, y = normalize(images, self.device, self.run.norm), labels.to(self.device, non_blocking=True)
        if self.cfg.strong_aug:  # weak-strong's strong view on the labeled batch, its labels mixed alike
            unit, y = strong_labeled(to_unit(images, self.device), y, step_generator(self.cfg.seed, iteration))
            x = standardize(unit, self.run.norm)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.run.amp):
            logits = self.net(x)
        return {"loss": segmentation_loss(logits, y, self.class_weights)}

    def evaluate(self):
        return validate_segmenter(self, self.model)

    def record(self) -> dict:
        return {} if self.stage is None else {"stage": self.stage}

    def describe(self) -> str:
        return f"the segmenter on {self.what}"


def labeled_stage(run: Run) -> Stage:
    """Stage 1 of the staged methods: the segmenter on the labeled images (or --init's)."""
    return Stage(1, f"segmenter on {len(run.labeled)} labeled images",
                 lambda out: SegmenterTask(run, out, run.labeled, run.pixel_counts, what=run.describe_labeled(),
                                           stage=1))


@register("supervised")
class Supervised(Method):
    needs_unlabeled = False

    def stages(self, run: Run) -> list[Stage]:
        return [Stage(0, "segmenter", lambda out: SegmenterTask(run, out, run.labeled, run.pixel_counts,
                                                                 what=run.describe_labeled()))]
