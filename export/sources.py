"""What an export reads from a run directory: the segmenter to deploy, the confidence net that gates
it, and the facts model.json records about them. Every problem is found here, before any long work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ssseg.classes import ClassSet
from ssseg.config import GATER_DIRS, SEGMENTER_STAGES
from ssseg.errors import ExportError
from ssseg.train.checkpoint import load_checkpoint, unfinished


@dataclass
class Sources:
    run: Path
    config: dict
    segmenter_path: Path
    segmenter_ckpt: dict
    aux_path: Path | None
    aux_ckpt: dict | None
    no_aux_reason: str | None
    classes: ClassSet

    @property
    def method(self) -> str:
        return self.config.get("method", "supervised")


def _final_segmenter(run: Path, config: dict) -> Path:
    """The run's deployable segmenter, or an error naming what is unfinished and both ways out."""
    pick = f"or export a checkpoint as it is with --segmenter {run}/<stage>/best.pt"
    resume = f"finish the run with `ssseg train --resume --out {run}`"
    if (run / "stage1").is_dir():
        last = int(config.get("until_stage") or 3)
        stage = next(k for k in SEGMENTER_STAGES.get(config.get("method"), (3, 1)) if k <= last)
        path, as_is = run / f"stage{stage}" / "best.pt", pick
    else:
        path = run / "best.pt"
        as_is = f"or export it as it is with --segmenter {path}"
        if not (run / "last.pt").is_file():
            raise ExportError("the run holds no trained segmenter (no last.pt)", path=run, fix=f"train it first: {resume}")
    reason = unfinished(run, config)
    if reason:
        raise ExportError(f"the run is not finished: {reason}", path=run, fix=f"{resume}, {as_is}")
    if not path.is_file():
        raise ExportError("the run holds no best.pt (no epoch was validated)", path=run,
                          fix=f"pass --segmenter {path.with_name('last.pt')}")
    return path


def resolve_sources(run: Path, segmenter: Path | None = None) -> Sources:
    run = Path(run)
    cfg_file = run / "config.json"
    if not cfg_file.is_file():
        raise ExportError("not a run directory (no config.json)", path=run, fix="pass the --out directory of ssseg train")
    try:
        config = json.loads(cfg_file.read_text())
    except ValueError:
        raise ExportError("config.json is not valid JSON", path=cfg_file, fix="restore it from the run") from None

    seg_path = Path(segmenter) if segmenter is not None else _final_segmenter(run, config)
    seg_ckpt = load_checkpoint(seg_path)
    if seg_ckpt["model"]["name"] != "dsnet-fast-ss":
        raise ExportError(f"--segmenter holds a {seg_ckpt['model']['name']} model, not a segmenter", path=seg_path,
                          fix="pass a best.pt/last.pt of stage 1 or 3 (or of a supervised run)")
    classes = ClassSet.from_dict(seg_ckpt["classes"])

    aux_path, aux_ckpt, reason = None, None, None
    gater_dir = run / GATER_DIRS.get(config.get("method"), "-")
    if config.get("method") not in GATER_DIRS:
        reason = (f"method {config.get('method')!r} trains no confidence net (train one for this segmenter: ssseg train "
                  f"--method aux --from-stage 2 --init {run} --until-stage 2 --out {run}-aux, then export that run)")
    elif not (gater_dir / "done.json").is_file() or not (gater_dir / "best.pt").is_file():
        reason = f"{gater_dir.name} (the confidence net) is not finished"
    else:
        aux_path = gater_dir / "best.pt"
        aux_ckpt = load_checkpoint(aux_path)
        aux_classes = ClassSet.from_dict(aux_ckpt["classes"])
        if aux_classes.names != classes.names:
            raise ExportError(f"the confidence net was trained for {aux_classes.num_classes} classes "
                              f"({aux_classes.name}), the segmenter predicts {classes.num_classes} ({classes.name})",
                              path=seg_path, fix="pass a --segmenter trained on the same class set as this run")
    return Sources(run, config, seg_path, seg_ckpt, aux_path, aux_ckpt, reason, classes)


def training_size(sources: Sources) -> tuple[int, int]:
    """The image size the segmenter was trained and validated at: --scale, else the dataset's frames."""
    scale = sources.config.get("scale")
    if scale:
        return int(scale[0]), int(scale[1])
    from ssseg.data import open_dataset

    try:
        ds = open_dataset(sources.config["data"], "train")
        return tuple(ds.load_image(0).shape[:2])
    except Exception as e:  # noqa: BLE001 - the dataset may have moved since training
        raise ExportError(f"cannot read the training data to find the input size ({str(e).splitlines()[0][:100]})",
                          path=sources.run, fix="pass --input-size HxW") from None
