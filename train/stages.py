"""The staged methods' bookkeeping (--method aux, --method self-train).

A run keeps stage1/ stage2/ stage3/. A stage is finished when its done.json exists and is skipped on re-run;
an unfinished one continues from its last.pt. ``--from-stage N`` moves stages >= N aside into replaced/ and
redoes them; ``--init RUN`` (with --from-stage 2) makes another run's final segmenter this run's stage 1,
on that run's split; ``--until-stage N`` stops after stage N."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from ssseg.config import RESUME_MUTABLE, SPLIT_OPTIONS, TrainConfig, first_stage_of
from ssseg.errors import CheckpointError, ConfigError
from ssseg.io import atomic_write_text, sha256_file, write_json
from ssseg.train import distributed as dist
from ssseg.train.checkpoint import build_from_checkpoint, load_checkpoint, resolve_checkpoint, unfinished
from ssseg.train.loop import Prepared, fit_segmenter, resume_config

STAGES = {1: "stage1", 2: "stage2", 3: "stage3"}


def is_done(stage_dir: Path) -> bool:
    return (stage_dir / "done.json").is_file()


def mark_done(stage_dir: Path, result: dict, info: dist.DistInfo) -> None:
    if info.is_main:
        write_json(stage_dir / "done.json", {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result})
    dist.barrier(info)


def runs_stage(cfg: TrainConfig, k: int) -> bool:
    """Whether this invocation goes as far as stage k (--until-stage)."""
    return cfg.until_stage is None or k <= cfg.until_stage


def staged_run_config(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """New run, --resume (nothing may change), --from-stage N (options of stages >= N may change), or a new
    run whose stage 1 is another run's segmenter (--from-stage 2 --init RUN)."""
    exists = (cfg.out / "config.json").is_file()
    if cfg.from_stage is not None and cfg.until_stage is not None and cfg.until_stage < cfg.from_stage:
        raise ConfigError(f"--from-stage {cfg.from_stage} with --until-stage {cfg.until_stage} would redo nothing",
                          fix="pass an --until-stage at or after --from-stage, or drop it")
    if cfg.init is not None and "init" in explicit:  # compare with the stored one as it was resolved
        cfg = dataclasses.replace(cfg, init=resolve_checkpoint(cfg.init))
    if cfg.from_stage is not None and exists:
        later = {f.name for f in dataclasses.fields(TrainConfig) if first_stage_of(f.name) >= cfg.from_stage}
        cfg = resume_config(cfg, explicit, RESUME_MUTABLE | later, why=f"--from-stage {cfg.from_stage}")
        if cfg.init is not None and cfg.from_stage == 1:
            raise ConfigError(f"stage 1 of this run is {cfg.init} (--init)", path=cfg.out,
                              fix="redo from stage 2 or 3, or start a new run with another --out to train stage 1")
        return cfg
    if cfg.resume:
        return resume_config(cfg, explicit)
    if exists:
        raise ConfigError("already holds a run", path=cfg.out,
                          fix="pass --resume to continue it (finished stages are skipped), --from-stage N to redo "
                              "stages N.., or choose another --out")
    if cfg.init is not None:
        if cfg.from_stage != 2:
            raise ConfigError("--init takes stage 1 from another run, so the run starts at stage 2",
                              fix=f"add --from-stage 2 (ssseg train --method {cfg.method} --from-stage 2 --init RUN)")
        cfg = init_split(cfg, explicit)
    elif cfg.from_stage not in (None, 1):
        raise ConfigError(f"no run here to redo from stage {cfg.from_stage}", path=cfg.out,
                          fix="drop --from-stage to run all three stages, or add --init RUN to start at stage 2 "
                              "from another run's segmenter")
    if cfg.labeled_fraction >= 1.0:
        raise ConfigError(f"--method {cfg.method} needs unlabeled images, and --labeled-fraction 1 leaves none",
                          fix="pass --labeled-fraction below 1 (the papers: 0.5 or less), or --method supervised")
    return cfg


def run_root(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (the nearest parent with splits/labeled.txt), if any."""
    for parent in list(checkpoint.resolve().parents)[:3]:
        if (parent / "splits" / "labeled.txt").is_file():
            return parent
    return None


def init_split(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """--init: the segmenter was trained on its run's labeled split, so this run uses the same one (copied
    into splits/); the split options come from that run, and explicit ones that differ are refused."""
    path = resolve_checkpoint(cfg.init)
    if Path(cfg.init).is_dir():
        check_finished(Path(cfg.init), path)
    ckpt = load_checkpoint(path)
    if ckpt["model"]["name"] != cfg.model:
        raise CheckpointError(f"holds a {ckpt['model']['name']}, not the segmenter ({cfg.model})", path=path,
                              fix="pass a run directory or a segmenter checkpoint (its best.pt)")
    source = ckpt.get("config") or {}
    updates = {}
    for k in sorted(SPLIT_OPTIONS):
        if k not in source:
            continue
        if k not in explicit:
            updates[k] = source[k]
        elif k != "data" and getattr(cfg, k) != source[k]:  # the data may have moved; the split may not change
            raise ConfigError(f"--{k.replace('_', '-')} {getattr(cfg, k)} differs from the --init run's "
                              f"({source[k]}), whose labeled split trained that segmenter", path=path,
                              fix=f"drop --{k.replace('_', '-')}")
    root = run_root(path)
    if root is not None:  # every process writes the same bytes, each file atomically: no torchrun race
        for name in ("labeled.txt", "unlabeled.txt"):
            atomic_write_text(cfg.out / "splits" / name, (root / "splits" / name).read_text())
    return dataclasses.replace(cfg, init=path, **updates)


def check_finished(run: Path, picked: Path) -> None:
    """--init RUN_DIR means RUN's final segmenter: refuse a run that has not got there yet, rather than take an
    earlier stage or epoch without a word."""
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    reason = unfinished(run, config) if (run / "stage1").is_dir() or (run / "last.pt").is_file() else None
    if reason:
        raise ConfigError(f"the run is not finished ({reason})", path=run,
                          fix=f"finish it (ssseg train --resume --out {run}), or pass a checkpoint such as {picked}")


def take_init(cfg: TrainConfig, run: Prepared, stage_dir: Path, info: dist.DistInfo, log: Callable[[str], None]) -> None:
    """Stage 1 of an --init run: the other run's segmenter, copied with its provenance."""
    ckpt = load_checkpoint(cfg.init)
    if ckpt["classes"] != run.classes.to_dict():
        raise CheckpointError(f"was trained on other classes than {cfg.data}'s", path=cfg.init,
                              fix="pass a segmenter trained on this dataset")
    if info.is_main:
        stage_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cfg.init, stage_dir / ".best.pt.tmp")
        (stage_dir / ".best.pt.tmp").replace(stage_dir / "best.pt")
    mark_done(stage_dir, {"init": str(cfg.init), "sha256": sha256_file(cfg.init), "best_miou": ckpt.get("best_miou", -1.0),
                          "epochs": ckpt.get("epoch"), "seconds": 0.0}, info)
    log(f"stage 1 is {cfg.init} (--init; val mIoU {100 * ckpt.get('best_miou', -1.0):.1f})")


def stage_one(cfg: TrainConfig, run: Prepared, info: dist.DistInfo, log: Callable[[str], None]) -> Path:
    """The common start of a staged run: stages >= --from-stage set aside, then stage 1, the segmenter on the
    labeled images (or --init's); returns stage1/."""
    if cfg.from_stage is not None and info.is_main:
        set_aside(cfg.out, cfg.from_stage, log)
    dist.barrier(info)
    s1 = cfg.out / STAGES[1]
    if is_done(s1):
        log(f"{s1} is finished; skipped")
    elif cfg.init is not None:
        take_init(cfg, run, s1, info, log)
    else:
        result = fit_segmenter(cfg, s1, run.labeled, run.pixel_counts, run.val, info, log, extra={"stage": 1},
                               what=f"{len(run.labeled)} labeled images ({cfg.labeled_fraction:g} of {len(run.train_all)})")
        mark_done(s1, result, info)
    return s1


def set_aside(out: Path, from_stage: int, log: Callable[[str], None]) -> None:
    """Move stages >= from_stage into replaced/<UTC time>/ rather than deleting what a user may want back."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for k in range(from_stage, 4):
        src = out / STAGES[k]
        if src.exists():
            dst = out / "replaced" / stamp / STAGES[k]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            log(f"--from-stage {from_stage}: moved {src} to {dst}")
    (out / "summary.json").unlink(missing_ok=True)


def unlabeled_images(run: Prepared):
    """The split's unlabeled images; a split without any is refused (nothing to learn from)."""
    unlabeled = run.train_all.subset(run.unlabeled_ids)
    if len(unlabeled) == 0:
        raise ConfigError(f"the split leaves no unlabeled images ({len(run.labeled)} labeled of {len(run.train_all)})",
                          path=run.cfg.out / "splits" / "unlabeled.txt", fix="start a new run with a lower --labeled-fraction")
    return unlabeled


def frozen(path: Path, device: torch.device) -> torch.nn.Module:
    """A network from a checkpoint, in eval mode and without gradients."""
    model = build_from_checkpoint(load_checkpoint(path, device), path).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
