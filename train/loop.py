"""Supervised training of the segmenter (stage 1 of every method, and stage 3 of --method aux), readable
top to bottom.

Runs unchanged under ``torchrun``: DistributedDataParallel, a distributed sampler, SyncBatchNorm on
GPUs, and only rank 0 writing files."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ssseg.classes import ClassSet
from ssseg.config import RESUME_MUTABLE, STAGED_METHODS, TrainConfig, hw_str
from ssseg.data import SegDataset, open_dataset, parse_spec
from ssseg.errors import CheckpointError, ConfigError, DataError
from ssseg.io import append_jsonl, atomic_write_text, read_jsonl, write_json
from ssseg.metrics import scores
from ssseg.models import count_macs, count_parameters, create_model
from ssseg.train import distributed as dist
from ssseg.train.checkpoint import load_checkpoint, save_checkpoint
from ssseg.train.data import TrainSet, default_crop, normalize, read_list, scan, split_labeled, write_list
from ssseg.train.evaluate import confusion_matrix
from ssseg.train.losses import enet_class_weights, segmentation_loss
from ssseg.train.schedule import poly_lr


def resume_config(cfg: TrainConfig, explicit: set[str], mutable: frozenset[str] = RESUME_MUTABLE,
                  why: str = "--resume") -> TrainConfig:
    """The stored config of cfg.out; explicit flags may only change the options in ``mutable``."""
    path = cfg.out / "config.json"
    if not path.is_file():
        raise ConfigError("no run to continue here (config.json missing)", path=cfg.out,
                          fix=f"drop {why} to start a new run")
    saved = TrainConfig(**json.loads(path.read_text()))
    changed = [k for k in explicit - mutable if getattr(cfg, k) != getattr(saved, k)]
    if changed:
        raise ConfigError(f"{why} cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} "
                          f"(the run used {', '.join(f'{k}={getattr(saved, k)}' for k in changed)})",
                          path=path, fix="drop those options, or start a new run with another --out")
    return TrainConfig(**{**saved.to_dict(), **{k: getattr(cfg, k) for k in mutable if k in explicit or k in RESUME_MUTABLE}})


def model_summary(name: str, num_classes: int) -> dict:
    """Parameter count and multiply-accumulates at the paper's 512x1024, measured on the meta device."""
    with torch.device("meta"):
        m = create_model(name, num_classes=num_classes)
        macs = count_macs(m, torch.zeros(1, 3, 512, 1024))
    return {"params": count_parameters(m), "gmacs_512x1024": macs / 1e9}


def train(cfg: TrainConfig, explicit: set[str] | frozenset = frozenset(), log: Callable[[str], None] = print) -> Path:
    """Run ``cfg.method`` into ``cfg.out``; returns the run directory."""
    saved = cfg.out / "config.json"
    if (cfg.resume or cfg.from_stage is not None) and saved.is_file() and "method" not in explicit:
        cfg = dataclasses.replace(cfg, method=json.loads(saved.read_text()).get("method", "supervised"))
    for given, option in ((cfg.from_stage is not None, "--from-stage"), (cfg.until_stage is not None, "--until-stage"),
                          (cfg.init is not None, "--init")):
        if given and cfg.method not in STAGED_METHODS:
            raise ConfigError(f"{option} applies to the staged methods ({', '.join(STAGED_METHODS)}), not --method "
                              f"{cfg.method}", fix=f"drop {option} (this method runs as one stage: use --resume)")
    info = dist.setup(cfg.device)
    try:
        say = log if info.is_main else (lambda *_: None)
        if cfg.method == "aux":
            from ssseg.train.aux import run_aux

            return run_aux(cfg, set(explicit), info, say)
        if cfg.method in ("adversarial", "dual-disc", "latent"):
            from ssseg.train.adversarial import run_adversarial

            return run_adversarial(cfg, set(explicit), info, say)
        if cfg.method == "self-train":
            from ssseg.train.selftrain import run_self_train

            return run_self_train(cfg, set(explicit), info, say)
        return run_supervised(cfg, set(explicit), info, say)
    finally:
        dist.teardown(info)


@dataclass
class Prepared:
    """A run's resolved configuration and validated data."""

    cfg: TrainConfig
    classes: ClassSet
    train_all: SegDataset
    labeled: SegDataset
    unlabeled_ids: list[str]
    pixel_counts: np.ndarray
    val: SegDataset | None


def prepare(cfg: TrainConfig, info: dist.DistInfo, log: Callable[[str], None]) -> Prepared:
    """Resolve the config, split and validate the data, then (rank 0) write config.json, splits/ and skipped.txt.

    The run directory is written only once the data has passed its checks."""
    kind, _ = parse_spec(cfg.data)
    cfg = cfg.resolve(kind)
    out = cfg.out
    train_all = open_dataset(cfg.data, "train")
    splits = out / "splits"
    new_split = not (splits / "labeled.txt").exists()
    if new_split:
        labeled_ids, unlabeled_ids = split_labeled(train_all.ids, cfg.labeled_fraction, cfg.seed)
    else:
        labeled_ids, unlabeled_ids = read_list(splits / "labeled.txt"), read_list(splits / "unlabeled.txt")
    labeled, pixel_counts, skipped = scan(train_all.subset(labeled_ids), cfg.skip_bad, log)
    try:
        val, _, val_skipped = scan(open_dataset(cfg.data, "val"), cfg.skip_bad, log)
    except DataError as e:
        if "no val split" not in str(e):
            raise
        val, val_skipped = None, []
        log(f"warning: {e}; training without validation (best.pt follows the last epoch)")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        if new_split:
            write_list(splits / "labeled.txt", labeled_ids)
            write_list(splits / "unlabeled.txt", unlabeled_ids)
        if skipped or val_skipped:
            atomic_write_text(out / "skipped.txt", "".join(f"{s}\n" for s in skipped + val_skipped))
    dist.barrier(info)
    return Prepared(cfg, train_all.classes, train_all, labeled, unlabeled_ids, pixel_counts, val)


def run_supervised(cfg: TrainConfig, explicit: set[str], info: dist.DistInfo, log: Callable[[str], None]) -> Path:
    if cfg.resume:
        cfg = resume_config(cfg, explicit)
    elif (cfg.out / "config.json").exists() or (cfg.out / "last.pt").exists():
        raise ConfigError("already holds a run", path=cfg.out, fix="pass --resume to continue it, or choose another --out")
    run = prepare(cfg, info, log)
    fit_segmenter(run.cfg, cfg.out, run.labeled, run.pixel_counts, run.val, info, log,
                  what=f"{len(run.labeled)} labeled images ({run.cfg.labeled_fraction:g} of {len(run.train_all)})")
    return cfg.out


def fit_segmenter(cfg: TrainConfig, out: Path, train_ds: SegDataset, pixel_counts: np.ndarray, val: SegDataset | None,
                  info: dist.DistInfo, log: Callable[[str], None], *, what: str, init: Path | None = None,
                  extra: dict | None = None) -> dict:
    """Train the segmenter on ``train_ds`` into ``out`` (class_weights.json, metrics.jsonl, last.pt, best.pt).

    Continues from ``out/last.pt`` when it exists; otherwise starts from ``init`` (a checkpoint) or from scratch.
    Returns {"best_miou", "epochs", "seconds"}."""
    device, main = info.device, info.is_main
    amp = cfg.amp and device.type == "cuda"
    classes: ClassSet = train_ds.classes
    weights = enet_class_weights(pixel_counts, cfg.class_weight_c)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "class_weights.json", {"classes": list(classes.names), "pixels": pixel_counts.tolist(),
                                                "weights": weights.tolist(), "c": cfg.class_weight_c})

    # --- model, optimiser, and the state of an interrupted run --------------------------------
    torch.manual_seed(cfg.seed)
    model_kwargs = {"num_classes": classes.num_classes}
    model = create_model(cfg.model, **model_kwargs).to(device)
    summary = model_summary(cfg.model, classes.num_classes)
    log(f"model {cfg.model}: {summary['params'] / 1e6:.2f}M parameters, {summary['gmacs_512x1024']:.1f} GMACs "
        f"({2 * summary['gmacs_512x1024']:.1f} GFLOPs) at 512x1024, {classes.num_classes} classes")
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    state = restore(out, model, optimizer, scaler, info, log)
    start_epoch, iteration, best_miou = state.get("epoch", 0), state.get("iteration", 0), state.get("best_miou", -1.0)
    if not state and init is not None:
        model.load_state_dict(load_checkpoint(init, device)["state_dict"])
        log(f"initialised from {init}")
    net = wrap_ddp(model, info)
    class_weights = torch.from_numpy(weights).to(device)

    crop = default_crop(train_ds, cfg)
    train_set = TrainSet(train_ds, cfg, crop)
    sampler, loader = train_loader(train_set, cfg, info)
    max_iterations = cfg.epochs * len(loader)
    log(f"training on {what}, crop {hw_str(crop)}, scale {hw_str(cfg.scale)}, batch {cfg.batch_size} x "
        f"{info.world_size} process(es), {cfg.epochs} epochs, lr {cfg.lr:g}, device {device}{' (AMP)' if amp else ''} -> {out}")

    # --- the loop --------------------------------------------------------------------------------
    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        train_set.epoch = epoch
        sampler.set_epoch(epoch)
        net.train()
        with EpochProgress(f"epoch {epoch + 1}/{cfg.epochs}", len(loader), info) as progress:
            for images, labels in loader:
                lr = poly_lr(cfg.lr, iteration, max_iterations, cfg.poly_power)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = normalize(images, device), labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    logits = net(x)
                loss = segmentation_loss(logits, y, class_weights)
                optimizer_step(loss, optimizer, scaler)
                iteration += 1
                progress.step(loss, lr, images.shape[0])
        mean_loss = progress.mean_loss()

        last = epoch + 1 == cfg.epochs
        val_scores = validate(model, val, cfg, epoch, info, amp)
        if main:
            improved = val_scores is not None and val_scores["miou"] > best_miou
            if improved:
                best_miou = val_scores["miou"]
            record = {"epoch": epoch + 1, "iteration": iteration, "best_miou": best_miou, "config": cfg.to_dict(),
                      **(extra or {})}
            save_checkpoint(out / "last.pt", model_name=cfg.model, model_kwargs=model_kwargs, classes=classes,
                            state_dict=model.state_dict(),
                            extra={**record, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()})
            if improved or (val is None and last):
                save_checkpoint(out / "best.pt", model_name=cfg.model, model_kwargs=model_kwargs, classes=classes,
                                state_dict=model.state_dict(), extra=record)
            append_jsonl(out / "metrics.jsonl", {
                "epoch": epoch + 1, "iteration": iteration, "loss": mean_loss, "lr": lr, **progress.record(),
                "val": None if val_scores is None else {k: val_scores[k] for k in ("miou", "pixel_acc", "per_class_iou")},
            })
            val_txt = "" if val_scores is None else f"  val mIoU {100 * val_scores['miou']:.1f}"
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {mean_loss:.4f}  lr {lr:.5f}{val_txt}  "
                f"{progress.seen / progress.seconds:.1f} img/s  {progress.seconds:.1f} s")
        dist.barrier(info)
    if start_epoch >= cfg.epochs:
        log(f"{out} already finished {cfg.epochs} epochs; nothing to do")
    return {"best_miou": best_miou, "epochs": cfg.epochs, "seconds": time.perf_counter() - t_start}


def validate(model: torch.nn.Module, val: SegDataset | None, cfg: TrainConfig, epoch: int, info: dist.DistInfo,
             amp: bool) -> dict | None:
    """Val scores after ``epoch`` (from 0) when --eval-every or the last epoch asks for them, else None."""
    if val is None or not ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
        return None
    return scores(confusion_matrix(model, val, cfg.scale, info.device, info, amp=amp), val.classes.names)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def restore(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            info: dist.DistInfo, log: Callable[[str], None], more: dict | None = None) -> dict:
    """Load out/last.pt into model, optimizer and scaler (and each ``more`` object from its key) if it exists,
    returning its record (else {}); drop metrics.jsonl lines of an epoch that was logged but not saved before
    an interruption."""
    state: dict = {}
    if (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt", info.device)
        try:
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            for key, obj in (more or {}).items():
                obj.load_state_dict(state[key])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"does not fit this run's model ({str(e).splitlines()[0][:120]})", path=out / "last.pt",
                                  fix="restore the run's own last.pt, or start a new run with another --out") from None
        log(f"resuming {out} after epoch {state['epoch']}")
    if info.is_main:
        trim_metrics(out, state.get("epoch", 0))
    return state


def trim_metrics(out: Path, epoch: int) -> None:
    """Drop metrics.jsonl lines of epochs after ``epoch`` (logged, then interrupted before their checkpoint)."""
    kept = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch"] <= epoch]
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def wrap_ddp(model: torch.nn.Module, info: dist.DistInfo) -> torch.nn.Module:
    """DistributedDataParallel under torchrun (SyncBatchNorm on GPUs); the model itself otherwise."""
    if not info.enabled:
        return model
    if info.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def endless(loader, sampler, start: int = 0):
    """The batches of ``loader`` forever: the unlabeled side of a labeled epoch. Each pass p reshuffles
    (sampler epoch p) and re-draws the augmentation (dataset epoch p); the first ``start`` batches are
    skipped, so a run resumed at iteration ``start`` sees the batches an uninterrupted one would."""
    per_pass = max(len(loader), 1)
    for p in itertools.count(start // per_pass):
        sampler.set_epoch(p)
        loader.dataset.epoch = p  # workers copy the dataset when a pass starts
        batches = iter(loader)
        if p == start // per_pass:
            batches = itertools.islice(batches, start % per_pass, None)
        yield from batches


def train_loader(train_set: torch.utils.data.Dataset, cfg: TrainConfig, info: dist.DistInfo, batch_size: int | None = None):
    """A distributed sampler (one replica without torchrun) and its loader (batches of ``batch_size``, default
    --batch-size); drop_last unless the set is tiny."""
    batch = batch_size or cfg.batch_size
    sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                                  shuffle=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=cfg.workers,
                                         drop_last=len(sampler) >= batch, pin_memory=info.device.type == "cuda")
    return sampler, loader


class EpochProgress:
    """One epoch's bookkeeping (images seen, summed loss, time) and a rich progress bar on a terminal (rank 0;
    silent elsewhere, where the epoch line suffices)."""

    def __init__(self, title: str, total: int, info: dist.DistInfo):
        import sys

        self.enabled = info.is_main and sys.stderr.isatty()
        self.title, self.total, self.info = title, total, info
        self.t0, self.seen, self.steps = time.perf_counter(), 0, 0
        self.loss_sum = torch.zeros((), device=info.device)

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.title, total=self.total, stats="")
        return self

    def step(self, loss: torch.Tensor, lr: float, images: int) -> None:
        self.seen += images * self.info.world_size
        self.steps += 1
        self.loss_sum += loss.detach()
        if self.enabled:  # loss.item() synchronises the GPU: only pay for it when a bar is shown
            ips = self.seen / (time.perf_counter() - self.t0)
            self.bar.update(self.task, advance=1, stats=f"loss {loss.item():.4f} lr {lr:.5f} {ips:.1f} img/s")

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        if self.enabled:
            self.bar.stop()

    def mean_loss(self) -> float:
        """The loss averaged over every step of every process (a collective call under torchrun)."""
        return float(dist.all_reduce_sum(self.loss_sum, self.info)) / (max(self.steps, 1) * self.info.world_size)

    def record(self) -> dict:
        return {"images_per_s": self.seen / self.seconds, "epoch_s": self.seconds}
