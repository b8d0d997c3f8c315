"""Evaluation: confusion matrix over a split (sharded across ranks), mIoU / per-class IoU / pixel accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssseg.checkpoint import build_from_checkpoint, load_checkpoint
from ssseg.classes import IGNORE_INDEX, ClassSet
from ssseg.data import SegDataset, open_split
from ssseg.errors import CheckpointError, ConfigError, DataError
from ssseg.gate import apply_thresholds, per_class_thresholds
from ssseg.io import write_json
from ssseg.metrics import scores
from ssseg.models import GATER_MODELS
from ssseg.rundir import RunDir, resolve_checkpoint
from ssseg.train.data import EvalSet, Norm, normalize
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
            pred = model(normalize(images, device, Norm.of(model))).argmax(1)
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
    ds = open_split(data, split, cfg.get("holdout", ()))
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


def gate_networks(target: Path, segmenter: Path | None) -> tuple[Path | None, Path]:
    """(gater, segmenter) of ``ssseg eval --gate TARGET``: a run with a confidence net, or that net's checkpoint,
    gives it and the segmenter it was trained against (--method aux: stage 1, the one that wrote the
    pseudo-labels; adversarial methods: the run's segmenter); a run without one, or a segmenter checkpoint,
    gives no gater and that segmenter, whose free sources (softmax, margin, entropy) are then measured alone."""
    target = Path(target)
    if target.is_file():
        gater = target if load_checkpoint(target)["model"]["name"] in GATER_MODELS else None
    else:
        run = RunDir(target)
        gater = run.latest_gater() if run.layout.get("gater") else None
    if gater is None:
        return None, resolve_checkpoint(Path(segmenter) if segmenter else target)
    ckpt = load_checkpoint(gater)
    seg_path = (resolve_checkpoint(Path(segmenter)) if segmenter
                else (gater.parent / ckpt.get("segmenter", "")).resolve())
    if not seg_path.is_file():
        raise CheckpointError("the segmenter this confidence net was trained against is missing", path=seg_path,
                              fix="restore it, or name one with --segmenter")
    return gater, seg_path


def frozen(path: Path, device: torch.device) -> torch.nn.Module:
    """A network from a checkpoint, in eval mode and without gradients."""
    model = build_from_checkpoint(load_checkpoint(path, device), path).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def run_gate_eval(target: Path, data: str | None, split: str, json_path: Path | None, thresholds: tuple[float, ...],
                  segmenter: Path | None = None, device: str = "auto", scale: tuple[int, int] | None = None,
                  workers: int = 0, target_precision: float | None = None,
                  apply: dict[str, list] | None = None) -> tuple[dict, Path]:
    """Measure the confidence gates of one segmenter on a labeled split, on the same pixels: the run's confidence
    net when it has one (the paper's Tables 3-4 at ``thresholds``), and max softmax, top-2 margin and entropy
    beside it (AUROC, AURC, coverage at 95/97/99 % kept-pixel accuracy and the class each would starve). With
    ``target_precision``, each source's per-class thresholds for that precision (ssseg.gate); ``apply``
    (source -> per-class thresholds chosen elsewhere, e.g. on another split) says what those keep here."""
    bad = [t for t in thresholds if not 0.0 <= t <= 1.0]
    if bad or not thresholds:
        raise ConfigError(f"--gate thresholds must lie in [0, 1], got {list(thresholds)}",
                          fix="e.g. --gate 0,0.7,0.8,0.9")
    if target_precision is not None and not 0.0 < target_precision < 1.0:
        raise ConfigError(f"--target-precision must lie in (0, 1), got {target_precision}", fix="e.g. 0.97")
    aux_path, seg_path = gate_networks(target, segmenter)
    seg_ckpt = load_checkpoint(seg_path)
    aux_ckpt = load_checkpoint(aux_path) if aux_path else None
    cfg = (aux_ckpt or seg_ckpt).get("config", {})
    data = data or cfg.get("data")
    if not data:
        raise DataError("the checkpoint records no dataset", path=aux_path or seg_path, fix="pass --data SPEC")
    ds = open_split(data, split, cfg.get("holdout", ()))
    check_classes(ClassSet.from_dict(seg_ckpt["classes"]), ds, seg_path)
    if aux_ckpt is not None:
        check_classes(ClassSet.from_dict(aux_ckpt["classes"]), ds, aux_path)
    if scale is None and cfg.get("scale"):
        scale = tuple(cfg["scale"])
    dev = pick_device(device)
    seg = build_from_checkpoint(seg_ckpt, seg_path).to(dev)
    aux = build_from_checkpoint(aux_ckpt, aux_path).to(dev) if aux_ckpt is not None else None
    gater = aux_ckpt["model"]["name"] if aux_ckpt is not None else None
    counts, sources = gate_counts(seg, aux, ds, scale, dev, tuple(thresholds), workers=workers,
                                  gater_name=gater or "gater", primary=gater or "softmax")
    names = ds.classes.names
    result = {"aux": str(aux_path) if aux_path else None, "segmenter": str(seg_path), "data": data, "split": split,
              "images": len(ds), "scale": list(scale) if scale else None, "primary": gater or "softmax",
              **counts.summary(names), "sources": sources.summary(names)}
    if target_precision is not None:
        result["target_precision"] = {s: per_class_thresholds(sources.joint_of(s), target_precision, names)
                                      for s in sources.sources}
    if apply:
        result["applied"] = {s: {"thresholds": t, **apply_thresholds(sources.joint_of(s), t, names)}
                             for s, t in apply.items() if s in sources.sources}
    out = json_path or (aux_path.parent.parent if aux_path else seg_path.parent) / f"gate_{split}.json"
    write_json(out, result)
    plot_gate(result, out.with_suffix(".png"))
    return result, out


def plot_gate(result: dict, path: Path) -> Path:
    """Left: coverage vs kept-pixel mIoU of the primary gate, its thresholds marked (the paper's view). Right:
    every source's kept-pixel accuracy against coverage on the same pixels, with the AUROC of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, rc) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    curve = [p for p in result["curve"] if p["kept_miou"] is not None]
    ax.plot([100 * p["coverage"] for p in curve], [100 * p["kept_miou"] for p in curve], "-", color="#1f77b4",
            label="thresholds 0, 0.01, ..., 0.99")
    for g in (g for g in result["gates"] if g["kept_miou"] is not None):
        ax.plot(100 * g["selected_share"], 100 * g["kept_miou"], "o", color="#d62728")
        ax.annotate(f"T={g['threshold']:g}", (100 * g["selected_share"], 100 * g["kept_miou"]),
                    textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xlabel("selected pixels (%)")
    ax.set_ylabel("mIoU of the kept pixels (%)")
    auroc = result["auroc"]
    ax.set_title(f"{result['data'].split(':')[0]} {result['split']}: {result.get('primary', 'confidence')} gate"
                 + (f" (AUROC {auroc:.3f})" if auroc is not None else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    for name, src in result.get("sources", {}).items():
        pts = src["curve"]
        a = "-" if src["auroc"] is None else f"{src['auroc']:.3f}"
        rc.plot([100 * p["coverage"] for p in pts], [100 * (1 - p["risk"]) for p in pts], "-",
                label=f"{name} (AUROC {a})")
    for acc in (95, 97, 99):
        rc.axhline(acc, color="grey", lw=0.6, ls=":")
    rc.set_xlabel("kept pixels (%)")
    rc.set_ylabel("kept-pixel accuracy (%)")
    rc.set_title("confidence sources, same pixels", fontsize=10)
    rc.grid(alpha=0.3)
    rc.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
