"""A run directory, and the only code that knows its layout. Training writes it; export, eval, ``--init`` and
the torch backend's ``--run`` read it through ``RunDir``.

    RUN/config.json          the resolved training options (flat names, as ``--config FILE`` takes them)
    RUN/run.json             the layout: method, staged or not, which stages hold a segmenter, where the gater is
    RUN/splits/              labeled.txt, unlabeled.txt
    RUN/footage/<source>/    frames of --unlabeled footage, decoded once at the training scale
    RUN/best.pt last.pt metrics.jsonl done.json     a one-stage run (supervised, adversarial, ...)
    RUN/stage1/ stage2/ ...  a staged run: each stage laid out like a one-stage run
    RUN/<gater>/best.pt      the confidence net that gates the final segmenter, when the method trains one
    RUN/replaced/<UTC>/      stages set aside by ``--from-stage``
    RUN/summary.json         the method's summary of the run

Reading checkpoints needs torch; everything else here is plain files, so ``ssseg.runtime`` may use the layout."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable

from ssseg.errors import CheckpointError, ConfigError, SsegError
from ssseg.io import read_format, write_json
from ssseg.segmenters import PAPER, get_spec

# every file name of a run, each named once here (the layout above); the methods' own files too, so this is
# the one place to look for what a run holds
CONFIG_FILE = "config.json"
LAYOUT_FILE = "run.json"
BEST_FILE = "best.pt"  # the checkpoint of the best validated epoch
LAST_FILE = "last.pt"  # the latest epoch, with the optimiser state a --resume continues from
METRICS_FILE = "metrics.jsonl"  # one line per epoch
DONE_FILE = "done.json"  # a finished stage (or one-stage run) and its result
SUMMARY_FILE = "summary.json"
GATE_FILE = "gate_val.json"  # the gate measured on the validation split: training writes it, the report reads it
PSEUDO_DIR = "pseudo"  # a stage's pseudo-labels (label and confidence maps) with their MANIFEST_FILE
MANIFEST_FILE = "manifest.json"
FOOTAGE_DIR, SPLITS_DIR, REPLACED_DIR = "footage", "splits", "replaced"
CLASS_WEIGHTS_FILE = "class_weights.json"  # supervised stages: the ENet class weights used
AUX_TERMS_FILE = "aux_terms.json"  # --method aux stage 2: the auxiliary loss's terms
LATENT_FILE = "latent_classes.json"  # --method latent: the latent classes found
LAYOUT_FORMAT = "ssseg.run"
LAYOUT_VERSION = 1
# runs written before run.json named their segmenter all trained the paper's
LEGACY_SEGMENTER = PAPER.name


def layout(method: str, *, stages: int = 0, segmenter_stages: tuple[int, ...] = (), gater: str | None = None,
           gate_threshold: float | None = None, segmenter_model: str = LEGACY_SEGMENTER) -> dict:
    """What run.json records: ``stages`` 0 for a run laid out at the root, N for stage1..stageN;
    ``segmenter_stages`` the stages whose best.pt is the run's final segmenter, most advanced first;
    ``gater`` the folder of the confidence net and ``gate_threshold`` its deployment threshold."""
    return {"format": LAYOUT_FORMAT, "format_version": LAYOUT_VERSION, "method": method, "stages": stages,
            "segmenter_stages": list(segmenter_stages), "gater": gater, "gate_threshold": gate_threshold,
            "segmenter_model": segmenter_model, "segmenter_spec": get_spec(segmenter_model).to_dict()}


def legacy_layout(config: dict) -> dict:
    """The layout of a run written before run.json existed, from the methods of that time (a fixed table: new
    methods always write run.json)."""
    method = config.get("method", "supervised")
    model = config.get("model", LEGACY_SEGMENTER)
    # config.json holds every resolved option, so the thresholds are there
    if method == "aux":
        return layout(method, stages=3, segmenter_stages=(3, 1), gater="stage2", gate_threshold=config.get("t_aux"),
                      segmenter_model=model)
    if method == "self-train":
        return layout(method, stages=3, segmenter_stages=(3, 2, 1), segmenter_model=model)
    if method == "adversarial":
        return layout(method, gater="gater", gate_threshold=config.get("t_semi"), segmenter_model=model)
    if method == "dual-disc":
        return layout(method, gater="gater", gate_threshold=0.5, segmenter_model=model)
    return layout(method, segmenter_model=model)


class RunDir:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    # --- what the run is --------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    def exists(self) -> bool:
        return self.config_path.is_file()

    @cached_property
    def config(self) -> dict:
        """config.json ({} when there is none); a damaged one is a clear error, not a traceback."""
        if not self.config_path.is_file():
            return {}
        try:
            return json.loads(self.config_path.read_text())
        except ValueError:
            raise ConfigError("config.json is not valid JSON", path=self.config_path,
                              fix="restore it from the run") from None

    @cached_property
    def layout(self) -> dict:
        path = self.root / LAYOUT_FILE
        if not path.is_file():
            return legacy_layout(self.config)
        return read_format(path, LAYOUT_FORMAT, LAYOUT_VERSION, what="an ssseg run layout", error=ConfigError,
                           damaged_fix="restore it from the run", foreign_fix="pass a run directory written by ssseg "
                                                                             "train", version_fix="use ssseg {written}")

    def write_layout(self, data: dict) -> None:
        write_json(self.root / LAYOUT_FILE, data)
        self.__dict__.pop("layout", None)

    @property
    def method(self) -> str:
        return self.layout["method"]

    @property
    def staged(self) -> bool:
        return self.layout["stages"] > 0 or (self.root / "stage1").is_dir()

    @property
    def segmenter_model(self) -> str:
        return self.layout.get("segmenter_model", LEGACY_SEGMENTER)

    def stage(self, k: int) -> Path:
        return self.root / f"stage{k}"

    @property
    def splits(self) -> Path:
        return self.root / SPLITS_DIR

    @property
    def footage(self) -> Path:
        """Frames of --unlabeled sources, decoded once: footage/<source>/<frame>.jpg and done.json."""
        return self.root / FOOTAGE_DIR

    def split_file(self, name: str) -> Path:
        """splits/labeled.txt or splits/unlabeled.txt."""
        return self.splits / f"{name}.txt"

    # --- finished or not ------------------------------------------------------------------------------
    @staticmethod
    def is_done(folder: Path) -> bool:
        return (folder / DONE_FILE).is_file()

    @staticmethod
    def mark_done(folder: Path, result: dict) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(folder / DONE_FILE, {"finished": stamp, **result})

    def unfinished(self) -> str | None:
        """Why the run has not reached its final segmenter yet, or None: a staged run's first stage without
        done.json up to its --until-stage, or a one-stage run's last.pt short of its epochs (or not written yet)."""
        if self.staged:
            last = int(self.config.get("until_stage") or self.layout["stages"] or 3)  # --until-stage: finished there
            missing = [k for k in range(1, last + 1) if not self.is_done(self.stage(k))]
            return f"stage{missing[0]} has no done.json" if missing else None
        if self.is_done(self.root):
            return None
        from ssseg.checkpoint import load_checkpoint

        if not (self.root / LAST_FILE).is_file():  # stopped inside its first epoch
            return "no epoch finished yet"
        epochs = load_checkpoint(self.root / LAST_FILE).get("epoch", 0)
        wanted = int(self.config.get("epochs") or 0)
        return f"epoch {epochs} of {self.config.get('epochs')}" if epochs < wanted else None

    # --- the final segmenter --------------------------------------------------------------------------
    def segmenter_folder(self) -> Path:
        """Where the final segmenter lives once the run is finished: the most advanced segmenter stage up to
        --until-stage (a staged run), else the root."""
        if not self.staged:
            return self.root
        last = int(self.config.get("until_stage") or self.layout["stages"] or 3)
        stages = self.layout["segmenter_stages"] or [1]
        return self.stage(next((k for k in stages if k <= last), 1))

    def final_segmenter(self, error: type[SsegError] = CheckpointError) -> Path:
        """The run's deployable segmenter, or an ``error`` naming what is unfinished and both ways out."""
        resume = f"finish the run with `ssseg train --resume --out {self.root}`"
        if not self.exists():
            raise error("not a run directory (no config.json)", path=self.root,
                        fix="pass the --out directory of ssseg train")
        folder = self.segmenter_folder()
        path = folder / BEST_FILE
        if self.staged:
            as_is = f"or export a checkpoint as it is with --segmenter {self.root}/<stage>/best.pt"
        else:
            as_is = f"or export it as it is with --segmenter {path}"
            # a finished run may travel without last.pt (its resumable state): done.json and best.pt suffice
            if not (self.root / LAST_FILE).is_file() and not self.is_done(self.root):
                raise error("the run holds no trained segmenter (no last.pt)", path=self.root,
                            fix=f"train it first: {resume}")
        reason = self.unfinished()
        if reason:
            raise error(f"the run is not finished: {reason}", path=self.root, fix=f"{resume}, {as_is}")
        if not path.is_file():
            raise error("the run holds no best.pt (no epoch was validated)", path=self.root,
                        fix=f"pass --segmenter {path.with_name('last.pt')}")
        return path

    def latest_segmenter(self) -> Path:
        """The segmenter to evaluate now, finished or not: best.pt (last.pt before the first validation) of the
        most advanced finished segmenter stage, else of stage 1 (a staged run), else of the root."""
        folders = [self.root]
        if self.staged:
            done = [self.stage(k) for k in self.layout["segmenter_stages"] or [1] if self.is_done(self.stage(k))]
            folders = done[:1] or [self.stage(1)]
        for folder in folders:
            for name in (BEST_FILE, LAST_FILE):
                if (folder / name).is_file():
                    return folder / name
        raise CheckpointError("run directory holds no best.pt or last.pt", path=self.root,
                              fix="train at least one epoch, or pass a checkpoint file")

    # --- the confidence net -----------------------------------------------------------------------------
    @property
    def gate_threshold(self) -> float | None:
        return self.layout.get("gate_threshold")

    def no_gater_reason(self) -> str | None:
        """Why the run has no confidence net to deploy with its segmenter, or None."""
        folder = self.layout.get("gater")
        if folder is None:
            return (f"method {self.method!r} trains no confidence net (train one for this segmenter: ssseg train "
                    f"--method aux --from-stage 2 --init {self.root} --until-stage 2 --out {self.root}-aux, then "
                    f"export that run)")
        if not (self.root / folder / BEST_FILE).is_file():
            return f"{folder}/best.pt (the confidence net) is missing"
        if not self.is_done(self.root / folder):
            return f"{folder} (the confidence net) is not finished: no {folder}/done.json"
        return None

    def gater(self) -> Path | None:
        """The finished confidence net's best.pt, or None (``no_gater_reason`` says why)."""
        return None if self.no_gater_reason() else self.root / self.layout["gater"] / BEST_FILE

    def latest_gater(self) -> Path:
        """The confidence net to evaluate now: best.pt, or last.pt before the first validation."""
        folder = self.layout.get("gater")
        if folder is None:
            raise CheckpointError(f"is a --method {self.method} run, which trains no confidence net", path=self.root,
                                  fix=f"train one for its segmenter: ssseg train --method aux --from-stage 2 --init "
                                      f"{self.root} --until-stage 2 --out {self.root}-aux, then pass that run")
        for name in (BEST_FILE, LAST_FILE):
            if (self.root / folder / name).is_file():
                return self.root / folder / name
        raise CheckpointError(f"holds no confidence net ({folder}/best.pt)", path=self.root,
                              fix="finish the run, or pass a run trained with a method that gates (aux, adversarial, "
                                  "dual-disc)")

    # --- stages ------------------------------------------------------------------------------------------
    def set_aside(self, from_stage: int, log: Callable[[str], None]) -> None:
        """Move stages >= from_stage into replaced/<UTC time>/ rather than deleting what a user may want back."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for k in range(from_stage, self.layout["stages"] + 1):
            src = self.stage(k)
            if src.exists():
                dst = self.root / REPLACED_DIR / stamp / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), str(dst))
                log(f"--from-stage {from_stage}: moved {src} to {dst}")
        (self.root / SUMMARY_FILE).unlink(missing_ok=True)


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint file as it is; a run directory means its latest segmenter (``RunDir.latest_segmenter``)."""
    path = Path(path)
    return RunDir(path).latest_segmenter() if path.is_dir() else path


def run_of(checkpoint: Path) -> RunDir | None:
    """The run a checkpoint belongs to (the nearest parent with splits/labeled.txt), if any."""
    for parent in list(Path(checkpoint).resolve().parents)[:3]:
        if (parent / SPLITS_DIR / "labeled.txt").is_file():
            return RunDir(parent)
    return None
