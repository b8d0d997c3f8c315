"""Evaluation: confusion matrix over a split (sharded across ranks), mIoU / per-class IoU / pixel accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.checkpoint import build_from_checkpoint, load_checkpoint
from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.data import SegDataset, open_dataset
from ssseg.errors import CheckpointError, ConfigError, DataError
from ssseg.io import write_json
from ssseg.metrics import scores
from ssseg.models import GATER_MODELS
from ssseg.rundir import RunDir, resolve_checkpoint
from ssseg.train.data import EvalSet, normalize
from ssseg.train.distributed import DistInfo, all_reduce_sum, pick_device
from ssseg.train.gate import gate_counts


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


def resolve_aux(target: Path) -> Path:
    """A run directory means its gater (``RunDir.latest_gater``); a file is taken as it is."""
    target = Path(target)
    return target if target.is_file() else RunDir(target).latest_gater()


def frozen(path: Path, device: torch.device) -> torch.nn.Module:
    """A network from a checkpoint, in eval mode and without gradients."""
    model = build_from_checkpoint(load_checkpoint(path, device), path).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def run_gate_eval(target: Path, data: str | None, split: str, json_path: Path | None, thresholds: tuple[float, ...],
                  segmenter: Path | None = None, device: str = "auto", scale: tuple[int, int] | None = None,
                  workers: int = 0) -> tuple[dict, Path]:
    """Measure the confidence gate (the paper's Tables 3-4) on a labeled split: segmenter + confidence net
    (the auxiliary net, or an adversarial method's gater), pixels below each threshold masked. The segmenter
    defaults to the one the confidence net was trained against (--method aux: stage 1, the one that wrote the
    pseudo-labels; adversarial methods: the run's segmenter, trained jointly)."""
    bad = [t for t in thresholds if not 0.0 <= t <= 1.0]
    if bad or not thresholds:
        raise ConfigError(f"--gate thresholds must lie in [0, 1], got {list(thresholds)}",
                          fix="e.g. --gate 0,0.7,0.8,0.9")
    aux_path = resolve_aux(target)
    aux_ckpt = load_checkpoint(aux_path)
    if aux_ckpt["model"]["name"] not in GATER_MODELS:
        raise CheckpointError(f"holds a {aux_ckpt['model']['name']}, not a confidence net", path=aux_path,
                              fix="pass the run directory, its stage2/best.pt or gater/best.pt")
    seg_path = (resolve_checkpoint(Path(segmenter)) if segmenter
                else (aux_path.parent / aux_ckpt.get("segmenter", "")).resolve())
    if not seg_path.is_file():
        raise CheckpointError("the segmenter this auxiliary net was trained against is missing", path=seg_path,
                              fix="restore it, or name one with --segmenter")
    seg_ckpt = load_checkpoint(seg_path)
    cfg = aux_ckpt.get("config", {})
    data = data or cfg.get("data")
    if not data:
        raise DataError("the checkpoint records no dataset", path=aux_path, fix="pass --data SPEC")
    ds = open_dataset(data, split)
    classes = ClassSet.from_dict(aux_ckpt["classes"])
    check_classes(classes, ds, aux_path)
    check_classes(ClassSet.from_dict(seg_ckpt["classes"]), ds, seg_path)
    if scale is None and cfg.get("scale"):
        scale = tuple(cfg["scale"])
    dev = pick_device(device)
    seg = build_from_checkpoint(seg_ckpt, seg_path).to(dev)
    aux = build_from_checkpoint(aux_ckpt, aux_path).to(dev)
    counts = gate_counts(seg, aux, ds, scale, dev, tuple(thresholds), workers=workers)
    result = {"aux": str(aux_path), "segmenter": str(seg_path), "data": data, "split": split, "images": len(ds),
              "scale": list(scale) if scale else None, **counts.summary(ds.classes.names)}
    out = json_path or aux_path.parent.parent / f"gate_{split}.json"
    write_json(out, result)
    plot_gate(result, out.with_suffix(".png"))
    return result, out


def plot_gate(result: dict, path: Path) -> Path:
    """Coverage vs kept-pixel mIoU across thresholds, the requested gates marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = [p for p in result["curve"] if p["kept_miou"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    ax.plot([100 * p["coverage"] for p in curve], [100 * p["kept_miou"] for p in curve], "-", color="#1f77b4",
            label="thresholds 0, 0.01, ..., 0.99")
    for g in (g for g in result["gates"] if g["kept_miou"] is not None):
        ax.plot(100 * g["selected_share"], 100 * g["kept_miou"], "o", color="#d62728")
        ax.annotate(f"T={g['threshold']:g}", (100 * g["selected_share"], 100 * g["kept_miou"]),
                    textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xlabel("selected pixels (%)")
    ax.set_ylabel("mIoU of the kept pixels (%)")
    auroc = result["auroc"]
    ax.set_title(f"{result['data'].split(':')[0]} {result['split']}: confidence gate"
                 + (f" (AUROC {auroc:.3f})" if auroc is not None else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
