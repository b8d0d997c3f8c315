"""What a method plugs into the engine (train/engine.py): a ``Method`` lists its ``Stage``s, and each stage
trains one ``Task``. A task owns only what is its own; the engine owns the loop around it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ssseg.data import SegDataset
from ssseg.rundir import layout
from ssseg.train.config import TrainConfig
from ssseg.train.setup import Run


@dataclass
class Optim:
    """An optimiser the engine steps with the loss of the same name; it decays ``lr`` (poly) every iteration."""

    optimizer: torch.optim.Optimizer
    lr: float
    prefix: str = ""  # its checkpoint keys: {prefix}optimizer and {prefix}scaler

    def describe(self) -> str:
        return f"{type(self.optimizer).__name__} lr {self.lr:g}"


class TensorState:
    """A tensor kept in last.pt beside the networks (e.g. a running statistic)."""

    def __init__(self, value: torch.Tensor):
        self.value = value

    def state_dict(self) -> torch.Tensor:
        return self.value.cpu()

    def load_state_dict(self, value: torch.Tensor) -> None:
        self.value = value.to(self.value.device)


class Task:
    """One trainable stage. ``build`` sets ``model`` (what best.pt holds, as ``model_name(**model_kwargs)``),
    ``optims`` (loss name -> Optim, main loss "loss" first) and ``state`` (more last.pt entries: key -> an object
    with state_dict/load_state_dict); ``data`` is the labeled set whose batches make an epoch."""

    title = ""  # prefix of the epoch lines, e.g. "aux "
    best = "best_miou"  # the score best.pt maximises, as checkpoints and done.json name it

    def __init__(self, run: Run, data: SegDataset, epochs: int):
        self.run, self.cfg, self.data, self.epochs = run, run.cfg, data, epochs
        self.device = run.info.device
        self.model_name: str = ""
        self.model_kwargs: dict = {}
        self.model: torch.nn.Module | None = None
        self.optims: dict[str, Optim] = {}
        self.state: dict[str, Any] = {}

    def prepare(self) -> None:
        """Before the seed: frozen networks, files (e.g. class weights)."""

    def build(self) -> None:
        """Networks and optimisers, right after torch.manual_seed(seed): their creation order is the init."""
        raise NotImplementedError

    def start(self, state: dict) -> None:
        """After last.pt (``state``, {} for a fresh start) was loaded: DDP wrapping, what a fresh start loads."""

    def begin(self, iteration: int, per_epoch: int) -> None:
        """Before the first epoch: iterators over more data, which continue at ``iteration``."""

    def train(self) -> None:
        """Put the trained networks in training mode at the start of an epoch."""
        self.model.train()

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], iteration: int) -> dict[str, torch.Tensor]:
        """One iteration's named losses; those named in ``optims`` are stepped, the others are logged parts."""
        raise NotImplementedError

    def after_step(self) -> None:
        """After the optimisers stepped (e.g. a mean teacher's update)."""

    def end_epoch(self) -> None:
        """Every process, after an epoch's steps: collective reductions of the task's own statistics."""

    def evaluate(self) -> tuple[float | None, dict | None, str]:
        """(score for best.pt, metrics.jsonl's "val", text for the epoch line); (None, None, "") without val data."""
        return None, None, ""

    def record(self) -> dict:
        """More fields of both checkpoints' records (stage, provenance)."""
        return {}

    def saved(self, out: Path, record: dict, best_saved: bool) -> None:
        """After best.pt (when ``best_saved``), before last.pt: files of the method's own."""

    def epoch_fields(self, iteration: int) -> dict:
        """More fields of the epoch's metrics.jsonl line (rank 0)."""
        return {}

    def epoch_note(self, iteration: int) -> str:
        return ""

    def result(self) -> dict:
        """More fields of done.json."""
        return {}

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class Stage:
    """``number`` 0: the one stage of a one-stage method, at the run root; else stage{number}/."""

    number: int
    title: str
    task: Callable[[Path], Task]
    before: Callable[[], None] | None = None  # e.g. pseudo-labels of the previous stage
    after: Callable[[dict], None] | None = None  # rank 0, after done.json (its result)


class Method:
    """A training method, found by name (train/registry.py); its options are its group in train/config.py."""

    name = ""
    staged = False  # stages in stage1/ stage2/ ... (resumable, --from-stage, --until-stage, --init)
    needs_unlabeled = True
    unlabeled_from_stage = 1  # the first stage that reads unlabeled images (--until-stage before it needs none)

    def reads_unlabeled(self, cfg: TrainConfig) -> bool:
        return self.needs_unlabeled and (cfg.until_stage is None or cfg.until_stage >= self.unlabeled_from_stage)

    def layout(self, cfg: TrainConfig) -> dict:
        """run.json: what export and eval need to know of the run's directory."""
        return layout(self.name, segmenter_model=cfg.model)

    def stages(self, run: Run) -> list[Stage]:
        raise NotImplementedError

    def finish(self, run: Run, seconds: float) -> list[str]:
        """Rank 0, after the stages: write summary.json if the method has one; the closing lines."""
        return []
