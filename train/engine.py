"""The training engine: one loop for every method, readable top to bottom.

``train`` finds the method by name (train/registry.py), settles the run's configuration and data, then runs the
method's stages: a finished stage (done.json) is skipped, ``--from-stage N`` sets stages >= N aside, ``--until-stage``
stops early and ``--init`` makes another run's segmenter stage 1. Each stage trains one ``Task`` with ``fit``: epochs
of iterations under the poly schedule, AMP, DDP under torchrun, a progress bar, validation every --eval-every,
best.pt / last.pt, metrics.jsonl, and a bit-exact --resume from last.pt. A method supplies only what is its own
(train/task.py): its networks and optimisers, one training step, what its checkpoint holds beyond the engine's."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from ssseg.checkpoint import load_checkpoint, save_checkpoint
from ssseg.config import hw_str
from ssseg.errors import CheckpointError
from ssseg.io import append_jsonl, atomic_write_text, read_jsonl
from ssseg.rundir import BEST_FILE, GATE_FILE, LAST_FILE, METRICS_FILE, RunDir
from ssseg.train import distributed as dist
from ssseg.train import registry
from ssseg.train.config import TrainConfig
from ssseg.train.data import TrainSet, default_crop, train_loader
from ssseg.train.schedule import scheduled_lr
from ssseg.train.setup import Run, prepare, run_config, take_init
from ssseg.train.task import Stage, Task


def train(cfg: TrainConfig, explicit: set[str] | frozenset = frozenset(), log: Callable[[str], None] = print) -> Path:
    """Run ``cfg.method`` into ``cfg.out``; returns the run directory."""
    saved = RunDir(cfg.out)
    if (cfg.resume or cfg.from_stage is not None) and saved.exists() and "method" not in explicit:
        cfg = TrainConfig(**{**cfg.to_dict(), "method": saved.method})
    method = registry.create(cfg.method)
    cfg = run_config(cfg, set(explicit), method.staged, method.reads_unlabeled(cfg))
    info = dist.setup(cfg.device)
    try:
        say = log if info.is_main else (lambda *_: None)
        run = prepare(cfg, method.layout(cfg), info, say, needs_unlabeled=method.reads_unlabeled(cfg))
        t0 = time.perf_counter()
        run_stages(method.stages(run), run)
        if info.is_main:
            for line in method.finish(run, time.perf_counter() - t0):
                say(line)
            if cfg.report:  # the report itself is written by ssseg.api.train, from what is on disk
                measure_gate(run)
        dist.barrier(info)
        return cfg.out
    finally:
        dist.teardown(info)


GATE_THRESHOLDS = (0.5, 0.7, 0.8, 0.9)  # the paper's Tables 3-4, plus the run's own threshold


def measure_gate(run: Run) -> None:
    """The run's gate measured on its val split (as ``ssseg eval --gate`` measures it), for its report."""
    from ssseg.errors import CheckpointError, DataError, filesystem_error
    from ssseg.train.evaluate import run_gate_eval

    own = run.dir.gate_threshold
    thresholds = tuple(sorted({*GATE_THRESHOLDS, *([own] if own is not None else [])}))
    try:
        run_gate_eval(run.dir.root, None, "val", run.dir.root / GATE_FILE, thresholds, device=run.cfg.device,
                      workers=0)
    except (DataError, CheckpointError, OSError) as e:  # no val split, no gater yet (--until-stage), a full disk
        run.log(f"no gate measurement for the report: {filesystem_error(e) if isinstance(e, OSError) else e}")


def run_stages(stages: list[Stage], run: Run) -> None:
    cfg, info, log, rundir = run.cfg, run.info, run.log, run.dir
    if cfg.from_stage is not None and info.is_main:
        rundir.set_aside(cfg.from_stage, log)
    dist.barrier(info)
    for stage in stages:
        folder = rundir.stage(stage.number) if stage.number else rundir.root
        if stage.number:
            log(f"[stage {stage.number}/{len(stages)}] {stage.title}")
        if cfg.until_stage is not None and stage.number > cfg.until_stage:
            log(f"skipped (--until-stage {cfg.until_stage})")
        elif rundir.is_done(folder):
            log(f"{folder} is finished; skipped")
        elif stage.number == 1 and cfg.init is not None:
            take_init(run, folder)
        else:
            if stage.before is not None:
                stage.before()
            result = fit(stage.task(folder), folder, run)
            if info.is_main:
                rundir.mark_done(folder, result)
                if stage.after is not None:
                    stage.after(result)
            dist.barrier(info)


def fit(task: Task, out: Path, run: Run) -> dict:
    """Train ``task`` into ``out`` (metrics.jsonl, last.pt, best.pt), continuing from out/last.pt when it exists.
    Returns {task.best: the best score, "epochs", "iterations", "seconds", ...task.result()}."""
    cfg, info, log = run.cfg, run.info, run.log
    device, main = info.device, info.is_main

    # --- networks, optimisers, and the state of an interrupted run ----------------------------------
    if main:
        out.mkdir(parents=True, exist_ok=True)
    task.prepare()
    torch.manual_seed(cfg.seed)  # every task initialises its networks from the run's seed
    task.build()
    scalers = {name: torch.amp.GradScaler(device.type, enabled=run.amp) for name in task.optims}
    state = restore(out, task, scalers, run)
    start_epoch, iteration, best = state.get("epoch", 0), state.get("iteration", 0), state.get(task.best, -1.0)
    task.start(state)

    crop = default_crop(task.data, cfg)
    train_set = TrainSet(task.data, cfg, crop)
    sampler, loader = train_loader(train_set, cfg, info)
    max_iterations = task.epochs * len(loader)
    warmup = min(cfg.warmup, max_iterations // 10)  # a short run keeps most of its steps at full rate
    task.begin(iteration, len(loader))
    main_optim = next(iter(task.optims))
    log(f"training {task.describe()}, crop {hw_str(crop)}, scale {hw_str(cfg.scale)}, batch "
        f"{cfg.batch_size} x {info.world_size} process(es), {task.epochs} epochs ({max_iterations} iterations), "
        f"{task.optims[main_optim].describe()}, device {device}{' (AMP)' if run.amp else ''} -> {out}")

    # --- the loop ------------------------------------------------------------------------------------------
    t_start = time.perf_counter()
    for epoch in range(start_epoch, task.epochs):
        train_set.epoch = epoch
        sampler.set_epoch(epoch)
        task.train()
        with EpochProgress(f"{task.title}epoch {epoch + 1}/{task.epochs}", len(loader), info) as progress:
            for batch in loader:
                lrs = {name: scheduled_lr(o.lr, iteration, max_iterations, cfg.poly_power, warmup)
                       for name, o in task.optims.items()}
                for name, o in task.optims.items():  # a group's lr_mult: a pretrained encoder's (train/optim.py)
                    for group in o.optimizer.param_groups:
                        group["lr"] = lrs[name] * group.get("lr_mult", 1.0)
                losses = task.step(batch, iteration)
                for name, o in task.optims.items():  # in order: a method's main loss first
                    if name in losses:
                        optimizer_step(losses[name], o.optimizer, scalers[name])
                task.after_step()
                iteration += 1
                progress.step(losses, set(task.optims), lrs[main_optim], batch[0].shape[0])
        mean_loss, parts = progress.mean_loss(), progress.mean_parts()
        task.end_epoch()

        last = epoch + 1 == task.epochs
        due = (epoch + 1) % cfg.eval_every == 0 or last
        score, val_record, val_text = task.evaluate() if due else (None, None, "")
        if main:
            improved = score is not None and score > best
            if improved:
                best = score
            record = {"epoch": epoch + 1, "iteration": iteration, task.best: best, "config": cfg.to_dict(),
                      **task.record()}
            # metrics line, best.pt, the method's files, last.pt, in that order: last.pt marks the epoch done, so
            # a failure (a full disk) before it repeats the epoch on --resume, which rewrites the line and best.pt
            append_jsonl(out / METRICS_FILE, {
                "epoch": epoch + 1, "iteration": iteration, "loss": mean_loss, "lr": lrs[main_optim], **parts,
                **task.epoch_fields(iteration), **progress.record(), "val": val_record})
            keep = improved or (score is None and last)  # without a score, best.pt is the last epoch
            if keep:
                save_checkpoint(out / BEST_FILE, model_name=task.model_name, model_kwargs=task.model_kwargs,
                                classes=run.classes, state_dict=task.model.state_dict(), extra=record,
                                segmenter=cfg.model)
            task.saved(out, record, keep)
            save_checkpoint(out / LAST_FILE, model_name=task.model_name, model_kwargs=task.model_kwargs,
                            classes=run.classes, state_dict=task.model.state_dict(),
                            extra={**record, **training_state(task, scalers)}, segmenter=cfg.model)
            parts_text = f" ({' '.join(f'{k} {v:.3f}' for k, v in parts.items())})" if parts else ""
            log(f"{task.title}epoch {epoch + 1}/{task.epochs}  loss {mean_loss:.4f}{parts_text}  lr "
                f"{lrs[main_optim]:.6f}{val_text}{task.epoch_note(iteration)}  {progress.seen / progress.seconds:.1f} "
                f"img/s  {progress.seconds:.1f} s")
        dist.barrier(info)
    if start_epoch >= task.epochs:
        log(f"{out} already finished {task.epochs} epochs; nothing to do")
    return {task.best: best, "epochs": task.epochs, "iterations": iteration,
            "seconds": time.perf_counter() - t_start, **task.result()}


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def training_state(task: Task, scalers: dict) -> dict:
    """What last.pt holds beyond best.pt: optimisers, scalers and the task's own state."""
    state = {}
    for name, o in task.optims.items():
        state[f"{o.prefix}optimizer"] = o.optimizer.state_dict()
        state[f"{o.prefix}scaler"] = scalers[name].state_dict()
    return {**state, **{key: obj.state_dict() for key, obj in task.state.items()}}


def restore(out: Path, task: Task, scalers: dict, run: Run) -> dict:
    """Load out/last.pt into the task (if it exists), returning its record (else {}); drop metrics.jsonl lines of
    an epoch that was logged but not saved before an interruption."""
    state: dict = {}
    if (out / LAST_FILE).exists():
        state = load_checkpoint(out / LAST_FILE, run.info.device)
        try:
            task.model.load_state_dict(state["state_dict"])
            for name, o in task.optims.items():
                o.optimizer.load_state_dict(state[f"{o.prefix}optimizer"])
                scalers[name].load_state_dict(state[f"{o.prefix}scaler"])
            for key, obj in task.state.items():
                obj.load_state_dict(state[key])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"does not fit this run's model ({str(e).splitlines()[0][:120]})",
                                  path=out / LAST_FILE,
                                  fix="restore the run's own last.pt, or start a new run with another --out") from None
        run.log(f"resuming {out} after epoch {state['epoch']}")
    if run.info.is_main:
        kept = [r for r in read_jsonl(out / METRICS_FILE) if r["epoch"] <= state.get("epoch", 0)]
        atomic_write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
    return state


class EpochProgress:
    """One epoch's bookkeeping (images seen, summed losses, time) and a rich progress bar on a terminal (rank 0;
    silent elsewhere, where the epoch line suffices)."""

    def __init__(self, title: str, total: int, info: dist.DistInfo):
        self.enabled = info.is_main and sys.stderr.isatty()
        self.title, self.total, self.info = title, total, info
        self.t0, self.seen, self.steps = time.perf_counter(), 0, 0
        self.loss_sum = torch.zeros((), device=info.device)
        self.part_sums: dict[str, torch.Tensor] = {}

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.title, total=self.total, stats="")
        return self

    def step(self, losses: dict[str, torch.Tensor], optimised: set[str], lr: float, images: int) -> None:
        """``losses["loss"]`` is the main loss; other losses that no optimiser steps are parts, averaged too."""
        loss = losses["loss"]
        self.seen += images * self.info.world_size
        self.steps += 1
        self.loss_sum += loss.detach()
        for name, value in losses.items():
            if name not in optimised:
                self.part_sums[name] = self.part_sums.get(name, torch.zeros((), device=loss.device)) + value.detach()
        if self.enabled:  # loss.item() synchronises the GPU: only pay for it when a bar is shown
            ips = self.seen / (time.perf_counter() - self.t0)
            self.bar.update(self.task, advance=1, stats=f"loss {loss.item():.4f} lr {lr:.5f} {ips:.1f} img/s")

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        if self.enabled:
            self.bar.stop()

    def _mean(self, total: torch.Tensor) -> float:
        """Averaged over every step of every process (a collective call under torchrun)."""
        return float(dist.all_reduce_sum(total, self.info)) / (max(self.steps, 1) * self.info.world_size)

    def mean_loss(self) -> float:
        return self._mean(self.loss_sum)

    def mean_parts(self) -> dict[str, float]:
        return {name: self._mean(total) for name, total in self.part_sums.items()}

    def record(self) -> dict:
        return {"images_per_s": self.seen / self.seconds, "epoch_s": self.seconds}
