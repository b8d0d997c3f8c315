"""Checkpoints: plain dicts of tensors and primitives, loadable with ``torch.load(weights_only=True)``,
written atomically (temporary file + rename) so a kill never leaves a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ssseg import __version__
from ssseg.classes import ClassSet
from ssseg.errors import CheckpointError
from ssseg.io import check_format

FORMAT = "ssseg.checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, *, model_name: str, model_kwargs: dict, classes: ClassSet, state_dict: dict,
                    extra: dict[str, Any]) -> Path:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ssseg_version": __version__,
        "model": {"name": model_name, "kwargs": model_kwargs},
        "classes": classes.to_dict(),
        "state_dict": state_dict,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path, fix="pass a run directory or a .pt file written by ssseg train")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncation and foreign pickles raise many types
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint ({reason})", path=path,
                              fix="it is truncated or not a ssseg checkpoint; use last.pt/best.pt of a finished epoch") from None
    check_format(ckpt, FORMAT, FORMAT_VERSION, what="an ssseg checkpoint", path=path, error=CheckpointError,
                 foreign_fix="pass a checkpoint written by ssseg train", version_fix="use ssseg {written} or retrain")
    return ckpt


def resolve_checkpoint(path: Path) -> Path:
    """A run directory means its final segmenter: best.pt (last.pt when no epoch was evaluated yet) of a
    one-stage run; of a staged run, that of its most advanced finished segmenter stage (SEGMENTER_STAGES:
    aux 3 then 1, self-train 3, 2, 1), else stage1's."""
    from ssseg.config import SEGMENTER_STAGES

    path = Path(path)
    if not path.is_dir():
        return path
    folders = [path]
    if (path / "stage1").is_dir():
        config = path / "config.json"
        method = json.loads(config.read_text()).get("method", "aux") if config.is_file() else "aux"
        done = [path / f"stage{k}" for k in SEGMENTER_STAGES.get(method, (3, 1)) if (path / f"stage{k}" / "done.json").is_file()]
        folders = done[:1] or [path / "stage1"]
    for folder in folders:
        for name in ("best.pt", "last.pt"):
            if (folder / name).is_file():
                return folder / name
    raise CheckpointError("run directory holds no best.pt or last.pt", path=path,
                          fix="train at least one epoch, or pass a checkpoint file")


def unfinished(run: Path, config: dict) -> str | None:
    """Why a run directory has not reached its final segmenter yet, or None: a staged run's first stage without
    done.json up to its --until-stage, or a one-stage run's last.pt short of its epochs (which must exist)."""
    run = Path(run)
    if (run / "stage1").is_dir():
        last = int(config.get("until_stage") or 3)  # a run stopped on purpose (--until-stage) is finished there
        missing = [k for k in range(1, last + 1) if not (run / f"stage{k}" / "done.json").is_file()]
        return f"stage{missing[0]} has no done.json" if missing else None
    epochs = load_checkpoint(run / "last.pt").get("epoch", 0)
    return f"epoch {epochs} of {config.get('epochs')}" if epochs < int(config.get("epochs") or 0) else None


def build_from_checkpoint(ckpt: dict, path: Path | str = "checkpoint") -> torch.nn.Module:
    from ssseg.models import create_model

    try:
        model = create_model(ckpt["model"]["name"], **ckpt["model"]["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"weights do not fit the model it names ({str(e).splitlines()[0][:160]})", path=path,
                              fix="the file is damaged or from an incompatible ssseg version") from None
    return model
