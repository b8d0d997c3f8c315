"""Before the loop: which configuration a run continues with (new, --resume, --from-stage, --init), and its
validated data and split. Rank 0 writes config.json, run.json, splits/ and skipped.txt once the data passed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ssseg.checkpoint import load_checkpoint
from ssseg.classes import ClassSet
from ssseg.data import HOLDOUT, SegDataset, holdout_ids, open_dataset, parse_spec
from ssseg.data.pseudo import Concat
from ssseg.errors import CheckpointError, ConfigError, DataError
from ssseg.io import atomic_write_text, sha256_file, write_json
from ssseg.rundir import BEST_FILE, CONFIG_FILE, LAST_FILE, RunDir, resolve_checkpoint, run_of
from ssseg.train import distributed as dist
from ssseg.train.config import FIELDS, RESUMABLE, SPLIT_OPTIONS, TrainConfig, first_stage_of
from ssseg.train.data import Norm, read_list, scan, split_labeled, write_list
from ssseg.train.footage import extract_footage


@dataclass
class Run:
    """A run being trained: its resolved configuration, validated data, directory and process."""

    cfg: TrainConfig
    dir: RunDir
    classes: ClassSet
    train_all: SegDataset
    labeled: SegDataset
    unlabeled_ids: list[str]
    pixel_counts: np.ndarray
    val: SegDataset | None
    info: dist.DistInfo
    log: Callable[[str], None]
    footage: SegDataset | None = None  # --unlabeled frames

    @property
    def norm(self) -> Norm:
        return Norm.of(self.cfg.model)

    @property
    def amp(self) -> bool:
        return self.cfg.amp and self.info.device.type == "cuda"

    def unlabeled(self) -> SegDataset:
        """The unlabeled images: the split's (unless --no-unlabeled-split) and the --unlabeled footage; none at
        all is refused (nothing to learn from)."""
        parts = [self.train_all.subset(self.unlabeled_ids)] if self.cfg.unlabeled_split else []
        parts = [p for p in parts + [self.footage] if p is not None and len(p)]
        if not parts:
            raise ConfigError(f"no unlabeled images: the split leaves none ({len(self.labeled)} labeled of "
                              f"{len(self.train_all)}) and no --unlabeled footage was given",
                              path=self.dir.split_file("unlabeled"),
                              fix="pass --unlabeled FOOTAGE, or start a new run with a lower --labeled-fraction")
        return parts[0] if len(parts) == 1 else Concat(parts)

    def all_images(self) -> SegDataset:
        """Every training image, labeled or not, and the footage."""
        return self.train_all if self.footage is None else Concat([self.train_all, self.footage])

    def describe_labeled(self) -> str:
        return f"{len(self.labeled)} labeled images ({self.cfg.labeled_fraction:g} of {len(self.train_all)})"


def resume_config(cfg: TrainConfig, explicit: set[str], mutable: frozenset[str] = RESUMABLE,
                  why: str = "--resume") -> TrainConfig:
    """The stored config of cfg.out; explicit flags may only change the options in ``mutable``."""
    path = cfg.out / CONFIG_FILE
    if not path.is_file():
        raise ConfigError("no run to continue here (config.json missing)", path=cfg.out,
                          fix=f"drop {why} to start a new run")
    saved = TrainConfig(**json.loads(path.read_text()))
    changed = [k for k in explicit - mutable if getattr(cfg, k) != getattr(saved, k)]
    if changed:
        raise ConfigError(f"{why} cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} "
                          f"(the run used {', '.join(f'{k}={getattr(saved, k)}' for k in changed)})",
                          path=path, fix="drop those options, or start a new run with another --out")
    keep = {k: getattr(cfg, k) for k in mutable if k in explicit or k in RESUMABLE}
    return TrainConfig(**{**saved.to_dict(), **keep})


def run_config(cfg: TrainConfig, explicit: set[str], staged: bool, needs_unlabeled: bool) -> TrainConfig:
    """New run, --resume (nothing may change) or, for staged methods, --from-stage N (options of stages >= N
    may change) and a new run whose stage 1 is another run's segmenter (--from-stage 2 --init RUN)."""
    exists = (cfg.out / CONFIG_FILE).is_file()
    if not staged:
        for given, option in ((cfg.from_stage is not None, "--from-stage"),
                              (cfg.until_stage is not None, "--until-stage"), (cfg.init is not None, "--init")):
            if given:
                raise ConfigError(f"{option} applies to the staged methods, not --method {cfg.method}",
                                  fix=f"drop {option} (this method runs as one stage: use --resume)")
    if cfg.from_stage is not None and cfg.until_stage is not None and cfg.until_stage < cfg.from_stage:
        raise ConfigError(f"--from-stage {cfg.from_stage} with --until-stage {cfg.until_stage} would redo nothing",
                          fix="pass an --until-stage at or after --from-stage, or drop it")
    if cfg.init is not None and "init" in explicit:  # compare with the stored one as it was resolved
        cfg = dataclasses.replace(cfg, init=resolve_checkpoint(cfg.init))
    if cfg.from_stage is not None and exists:
        later = {name for name in FIELDS if first_stage_of(name) >= cfg.from_stage}
        cfg = resume_config(cfg, explicit, RESUMABLE | later, why=f"--from-stage {cfg.from_stage}")
        if cfg.init is not None and cfg.from_stage == 1:
            raise ConfigError(f"stage 1 of this run is {cfg.init} (--init)", path=cfg.out,
                              fix="redo from stage 2 or 3, or start a new run with another --out to train stage 1")
        return cfg
    if cfg.resume:
        return resume_config(cfg, explicit)
    if exists or (cfg.out / LAST_FILE).exists():
        raise ConfigError("already holds a run", path=cfg.out,
                          fix="pass --resume to continue it (finished stages are skipped), --from-stage N to redo "
                              "stages N.., or choose another --out" if staged else
                              "pass --resume to continue it, or choose another --out")
    if cfg.init is not None:
        if cfg.from_stage != 2:
            raise ConfigError("--init takes stage 1 from another run, so the run starts at stage 2",
                              fix=f"add --from-stage 2 (ssseg train --method {cfg.method} --from-stage 2 --init RUN)")
        cfg = init_split(cfg, explicit)
    elif cfg.from_stage not in (None, 1):
        raise ConfigError(f"no run here to redo from stage {cfg.from_stage}", path=cfg.out,
                          fix="drop --from-stage to run all three stages, or add --init RUN to start at stage 2 "
                              "from another run's segmenter")
    if needs_unlabeled and cfg.labeled_fraction >= 1.0 and not cfg.unlabeled:
        raise ConfigError(f"--method {cfg.method} needs unlabeled images, and --labeled-fraction 1 leaves none",
                          fix="pass --unlabeled FOOTAGE or --labeled-fraction below 1 (the papers: 0.5 or less), or "
                              "--method supervised")
    return cfg


def init_split(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """--init: the segmenter was trained on its run's labeled split, so this run uses the same one (copied
    into splits/); the split options come from that run, and explicit ones that differ are refused."""
    path = resolve_checkpoint(cfg.init)
    if Path(cfg.init).is_dir():
        check_finished(RunDir(cfg.init), path)
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
        # the data may have moved; the split may not change
        elif k != "data" and _plain(getattr(cfg, k)) != _plain(source[k]):
            raise ConfigError(f"--{k.replace('_', '-')} {getattr(cfg, k)} differs from the --init run's "
                              f"({source[k]}), whose labeled split trained that segmenter", path=path,
                              fix=f"drop --{k.replace('_', '-')}")
    root = run_of(path)
    if root is not None:  # every process writes the same bytes, each file atomically: no torchrun race
        mine = RunDir(cfg.out)
        for name in ("labeled", "unlabeled", HOLDOUT):
            if root.split_file(name).is_file():
                atomic_write_text(mine.split_file(name), root.split_file(name).read_text())
    return dataclasses.replace(cfg, init=path, **updates)


def _plain(value):
    """A config value as JSON gives it back (tuples are lists there)."""
    return list(value) if isinstance(value, tuple) else value


def without_holdout(train_all: SegDataset, prefixes: tuple[str, ...]) -> SegDataset:
    """The train split less --holdout's images; a prefix that matches nothing, or everything, is a mistake."""
    held = set(holdout_ids(train_all.ids, prefixes))
    unmatched = [p for p in prefixes if not any(i.startswith(p) for i in held)]
    if unmatched:
        raise ConfigError(f"--holdout {', '.join(unmatched)} matches no training image (names start like "
                          f"{train_all.ids[0]!r})", fix="pass the prefix of a drive's image names, e.g. 0001TP")
    if len(held) == len(train_all):
        raise ConfigError(f"--holdout {', '.join(prefixes)} holds out every training image",
                          fix="hold out one drive of several")
    return train_all.subset([i for i in train_all.ids if i not in held])


def check_finished(run: RunDir, picked: Path) -> None:
    """--init RUN_DIR means RUN's final segmenter: refuse a run that has not got there yet, rather than take an
    earlier stage or epoch without a word."""
    reason = run.unfinished() if run.staged or (run.root / LAST_FILE).is_file() else None
    if reason:
        raise ConfigError(f"the run is not finished ({reason})", path=run.root,
                          fix=f"finish it (ssseg train --resume --out {run.root}), or pass a checkpoint such as "
                              f"{picked}")


def take_init(run: Run, stage_dir: Path) -> None:
    """Stage 1 of an --init run: the other run's segmenter, copied with its provenance."""
    cfg, info = run.cfg, run.info
    ckpt = load_checkpoint(cfg.init)
    if ckpt["classes"] != run.classes.to_dict():
        raise CheckpointError(f"was trained on other classes than {cfg.data}'s", path=cfg.init,
                              fix="pass a segmenter trained on this dataset")
    if info.is_main:
        stage_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cfg.init, stage_dir / ".best.pt.tmp")
        (stage_dir / ".best.pt.tmp").replace(stage_dir / BEST_FILE)
        RunDir.mark_done(stage_dir, {"init": str(cfg.init), "sha256": sha256_file(cfg.init),
                                     "best_miou": ckpt.get("best_miou", -1.0), "epochs": ckpt.get("epoch"),
                                     "seconds": 0.0})
    dist.barrier(info)
    run.log(f"stage 1 is {cfg.init} (--init; val mIoU {100 * ckpt.get('best_miou', -1.0):.1f})")


def prepare(cfg: TrainConfig, layout: dict, info: dist.DistInfo, log: Callable[[str], None],
            needs_unlabeled: bool = True) -> Run:
    """Resolve the config, split and decode-check the data the method will read (the split's unlabeled images
    only when it reads them), then (rank 0) write config.json, run.json, splits/ and skipped.txt. The run
    directory is written only once the data has passed its checks."""
    kind, _ = parse_spec(cfg.data)
    cfg = cfg.resolve(kind)
    rundir = RunDir(cfg.out)
    train_all = open_dataset(cfg.data, "train")
    held = holdout_ids(train_all.ids, cfg.holdout)
    if cfg.holdout:
        train_all = without_holdout(train_all, cfg.holdout)
        log(f"holding {len(held)} training images ({', '.join(cfg.holdout)}*) out of training for calibration")
    new_split = not rundir.split_file("labeled").exists()
    if new_split:
        labeled_ids, unlabeled_ids = split_labeled(train_all.ids, cfg.labeled_fraction, cfg.seed)
    else:
        labeled_ids, unlabeled_ids = read_list(rundir.split_file("labeled")), read_list(rundir.split_file("unlabeled"))
    labeled, pixel_counts, skipped = scan(train_all.subset(labeled_ids), cfg.skip_bad, log)
    if needs_unlabeled and unlabeled_ids and cfg.unlabeled_split:
        unlabeled, _, unlabeled_skipped = scan(train_all.subset(unlabeled_ids), cfg.skip_bad, log, labels=False)
        skipped += unlabeled_skipped
        train_all = train_all.subset(set(labeled.ids) | set(unlabeled.ids))  # the split lists stay as drawn
        unlabeled_ids = [i for i in unlabeled_ids if i in set(unlabeled.ids)]
    try:
        val, _, val_skipped = scan(open_dataset(cfg.data, "val"), cfg.skip_bad, log)
    except DataError as e:
        if "no val split" not in str(e):
            raise
        val, val_skipped = None, []
        log(f"warning: {e}; training without validation (best.pt follows the last epoch)")
    footage, footage_problems = None, []
    if cfg.unlabeled:  # rank 0 decodes, the others read what it wrote
        for rank_writes in (True, False):
            if info.is_main == rank_writes:
                footage, footage_problems = extract_footage(cfg.unlabeled, cfg.unlabeled_every, cfg.scale,
                                                            rundir.footage, train_all.classes, cfg.skip_bad, log,
                                                            write=rank_writes, max_frames=cfg.unlabeled_max_frames)
            dist.barrier(info)
        log(f"unlabeled footage: {len(footage)} frames")
    if info.is_main:
        rundir.root.mkdir(parents=True, exist_ok=True)
        write_json(rundir.config_path, cfg.to_dict())
        rundir.write_layout(layout)
        if new_split:
            write_list(rundir.split_file("labeled"), labeled_ids)
            write_list(rundir.split_file("unlabeled"), unlabeled_ids)
            if held:
                write_list(rundir.split_file(HOLDOUT), held)
        if skipped or val_skipped or footage_problems:
            lines = skipped + val_skipped + footage_problems
            atomic_write_text(rundir.root / "skipped.txt", "".join(f"{s}\n" for s in lines))
    dist.barrier(info)
    return Run(cfg, rundir, train_all.classes, train_all, labeled, unlabeled_ids, pixel_counts, val, info, log,
               footage)
