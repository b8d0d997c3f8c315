"""What an export reads from a run directory: the segmenter to deploy, the confidence net that gates
it, and the facts model.json records about them. Every problem is found here, before any long work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssseg.checkpoint import load_checkpoint, normalization
from ssseg.classes import ClassSet
from ssseg.errors import ExportError
from ssseg.rundir import RunDir


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
    gate_threshold: float | None  # the run's deployment threshold of its gater

    @property
    def method(self) -> str:
        return RunDir(self.run).method

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The (mean, std) the segmenter was trained with, which the graphs bake in."""
        return normalization(self.segmenter_ckpt)


def resolve_sources(run: Path, segmenter: Path | None = None) -> Sources:
    rundir = RunDir(run)
    if not rundir.exists():
        raise ExportError("not a run directory (no config.json)", path=rundir.root,
                          fix="pass the --out directory of ssseg train")
    config = rundir.config
    seg_path = Path(segmenter) if segmenter is not None else rundir.final_segmenter(ExportError)
    seg_ckpt = load_checkpoint(seg_path)
    if seg_ckpt["model"]["name"] != rundir.segmenter_model:
        raise ExportError(f"--segmenter holds a {seg_ckpt['model']['name']} model, not a segmenter "
                          f"({rundir.segmenter_model}, the run's)", path=seg_path,
                          fix="pass a best.pt/last.pt of a segmenter stage (or of a one-stage run)")
    classes = ClassSet.from_dict(seg_ckpt["classes"])

    aux_path, aux_ckpt = rundir.gater(), None
    if aux_path is not None:
        aux_ckpt = load_checkpoint(aux_path)
        aux_classes = ClassSet.from_dict(aux_ckpt["classes"])
        if aux_classes.names != classes.names:
            raise ExportError(f"the confidence net was trained for {aux_classes.num_classes} classes "
                              f"({aux_classes.name}), the segmenter predicts {classes.num_classes} ({classes.name})",
                              path=seg_path, fix="pass a --segmenter trained on the same class set as this run")
    return Sources(Path(run), config, seg_path, seg_ckpt, aux_path, aux_ckpt, rundir.no_gater_reason(), classes,
                   rundir.gate_threshold)


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
