"""Checkpoints: plain dicts of tensors and primitives, loadable with ``torch.load(weights_only=True)``,
written atomically (temporary file + rename) so a kill never leaves a half-written file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ssseg.classes import ClassSet
from ssseg.errors import CheckpointError
from ssseg.io import atomic_write_bytes, check_format
from ssseg.segmenters import IMAGENET_MEAN, IMAGENET_STD, PAPER, SPECS, SegmenterSpec, get_spec, is_segmenter
from ssseg.versions import __version__

FORMAT = "ssseg.checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, *, model_name: str, model_kwargs: dict, classes: ClassSet, state_dict: dict,
                    extra: dict[str, Any], segmenter: str = PAPER.name) -> Path:
    """``segmenter``: the run's segmenter, whose spec (and normalisation) the file records; for a confidence net or
    discriminator too, as they read that segmenter's inputs."""
    spec = get_spec(segmenter)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ssseg_version": __version__,
        "model": {"name": model_name, "kwargs": model_kwargs},
        "segmenter_spec": spec.to_dict(),
        "classes": classes.to_dict(),
        # the input normalisation the weights were trained with; export bakes it into the graphs
        "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
        "state_dict": state_dict,
        **extra,
    }
    # serialised in memory and written by Python: a full disk is an OSError naming the file (torch.save's own
    # writer reports it as a RuntimeError), and the write is atomic (a temporary, then a rename)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path,
                              fix="pass a run directory or a .pt file written by ssseg train")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncation and foreign pickles raise many types
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint ({reason})", path=path,
                              fix="it is truncated or not a ssseg checkpoint; "
                                  "use last.pt/best.pt of a finished epoch") from None
    check_format(ckpt, FORMAT, FORMAT_VERSION, what="an ssseg checkpoint", path=path, error=CheckpointError,
                 foreign_fix="pass a checkpoint written by ssseg train", version_fix="use ssseg {written} or retrain")
    return ckpt


def normalization(ckpt: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a checkpoint's weights expect; checkpoints written before they were recorded used ImageNet's
    (the paper's segmenter's)."""
    norm = ckpt.get("normalization") or ckpt.get("segmenter_spec") or {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    return tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"])


def checkpoint_segmenter(ckpt: dict, path: Path | str = "checkpoint") -> SegmenterSpec:
    """The spec of the segmenter a checkpoint belongs to (its own network, or the one a confidence net reads);
    checkpoints written before specs were recorded all belong to the paper's."""
    name = (ckpt.get("segmenter_spec") or {}).get("name", PAPER.name)
    if not is_segmenter(name):
        raise CheckpointError(f"written for segmenter {name!r}, which this ssseg {__version__} does not know",
                              path=path, fix=f"use the ssseg that trained it (this one knows {', '.join(SPECS)})")
    return get_spec(name)


def build_from_checkpoint(ckpt: dict, path: Path | str = "checkpoint") -> torch.nn.Module:
    from ssseg.models import MODELS, create_model

    if ckpt.get("model", {}).get("name") not in MODELS:
        raise CheckpointError(f"holds a {ckpt.get('model', {}).get('name')!r} network, which this ssseg {__version__} "
                              f"does not know", path=path, fix="use the ssseg that trained it, or retrain")
    try:
        model = create_model(ckpt["model"]["name"], **ckpt["model"]["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"weights do not fit the model it names ({str(e).splitlines()[0][:160]})", path=path,
                              fix="the file is damaged or from an incompatible ssseg version") from None
    return model
