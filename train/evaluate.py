"""Evaluation: confusion matrix over a split (sharded across ranks), mIoU / per-class IoU / pixel accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.data import SegDataset, open_dataset
from ssseg.errors import DataError
from ssseg.io import write_json
from ssseg.metrics import scores
from ssseg.train.checkpoint import build_from_checkpoint, load_checkpoint, resolve_checkpoint
from ssseg.train.data import EvalSet, normalize
from ssseg.train.distributed import DistInfo, all_reduce_sum, pick_device


@torch.no_grad()
def confusion_matrix(model: torch.nn.Module, ds: SegDataset, scale: tuple[int, int] | None, device: torch.device,
                     info: DistInfo = DistInfo(), workers: int = 0, amp: bool = False) -> np.ndarray:
    was_training = model.training
    model.eval()
    c = ds.classes.num_classes
    conf = torch.zeros(c * c, dtype=torch.int64, device=device)
    shard = torch.utils.data.Subset(EvalSet(ds, scale), range(info.rank, len(ds), info.world_size))
    loader = torch.utils.data.DataLoader(shard, batch_size=1, num_workers=workers)
    for images, labels in loader:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            pred = model(normalize(images, device)).argmax(1)
        target = labels.to(device).long()
        keep = target != IGNORE_INDEX
        conf += torch.bincount(target[keep] * c + pred[keep], minlength=c * c)
    all_reduce_sum(conf, info)
    model.train(was_training)
    return conf.view(c, c).cpu().numpy()


def check_classes(expected: ClassSet, ds: SegDataset, source: Path | str) -> None:
    if tuple(expected.names) != tuple(ds.classes.names):
        raise DataError(f"the model was trained on {expected.num_classes} classes of '{expected.name}' but the "
                        f"dataset has {ds.classes.num_classes} classes of '{ds.classes.name}'", path=source,
                        fix="evaluate on a dataset with the model's class set")


def run_eval(target: Path, data: str | None, split: str, json_path: Path | None, device: str = "auto",
             scale: tuple[int, int] | None = None, workers: int = 0) -> tuple[dict, Path]:
    """Evaluate a run directory or checkpoint; returns the result and where its JSON went."""
    ckpt_path = resolve_checkpoint(Path(target))
    ckpt = load_checkpoint(ckpt_path)
    model = build_from_checkpoint(ckpt, ckpt_path)
    cfg = ckpt.get("config", {})
    data = data or cfg.get("data")
    if not data:
        raise DataError("the checkpoint records no dataset", path=ckpt_path, fix="pass --data SPEC")
    ds = open_dataset(data, split)
    check_classes(ClassSet.from_dict(ckpt["classes"]), ds, ckpt_path)
    if scale is None and cfg.get("scale"):
        scale = tuple(cfg["scale"])
    dev = pick_device(device)
    model.to(dev)
    conf = confusion_matrix(model, ds, scale, dev, workers=workers)
    result = {
        "checkpoint": str(ckpt_path),
        "epoch": ckpt.get("epoch"),
        "data": data,
        "split": split,
        "images": len(ds),
        "scale": list(scale) if scale else None,
        **scores(conf, ds.classes.names),
    }
    out = json_path or ckpt_path.parent / f"eval_{split}.json"
    write_json(out, result)
    return result, out
