"""The Python API the CLI stands on: each command's work on a config object, as the CLI builds it from its
options (ssseg.config, ssseg.train.config). A command that writes a report writes it here, after the job,
so the jobs (ssseg.label, ssseg.train) never call up into ssseg.report."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from ssseg.config import BenchConfig, EvalConfig, ExportConfig, LabelConfig, ReportConfig

if TYPE_CHECKING:
    from ssseg.train.config import TrainConfig

Say = Callable[[str], None]


def train(cfg: TrainConfig, say: Say = print, explicit: Iterable[str] = ()) -> Path:
    """``ssseg train``: trains ``cfg`` (a ``ssseg.train.config.TrainConfig``) and returns its run directory.
    ``explicit``: the options the user gave, which a --resume checks against the run's saved ones (the CLI
    passes the flags given; from Python, the ones you set)."""
    from ssseg.train.engine import train as run_training

    run = run_training(cfg, explicit=set(explicit), log=say)
    if cfg.report and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        write_report_safely(run, say)
    return run


def evaluate(cfg: EvalConfig) -> tuple[dict, Path]:
    """``ssseg eval``: mIoU, per-class IoU and pixel accuracy, or with ``cfg.gate`` what the gate keeps at those
    thresholds; returns the result and the JSON written."""
    from ssseg.train.evaluate import run_eval, run_gate_eval

    if not cfg.gate:
        return run_eval(cfg.target, cfg.data, cfg.split, cfg.json, cfg.device, cfg.scale)
    return run_gate_eval(cfg.target, cfg.data, cfg.split, cfg.json, cfg.gate, cfg.segmenter, cfg.device, cfg.scale,
                         target_precision=cfg.target_precision)


def export(cfg: ExportConfig, say: Say = print) -> Path:
    """``ssseg export``: writes the model directory and returns its model.json."""
    from ssseg.export import run_export

    return run_export(cfg, say)


def bench(cfg: BenchConfig, say: Say = print) -> dict:
    """``ssseg bench``: times every backend and stage; returns what --json writes."""
    from ssseg.runtime.bench import run_bench

    return run_bench(cfg, say)


def label(cfg: LabelConfig, say: Say = print) -> int:
    """``ssseg label``: returns its exit status (0, or 3 with damaged stretches skipped); raises SsegError for a
    failed source or a bad input, Interrupted after Ctrl-C. With ``cfg.report`` the job's report.html is written
    whatever the ending, from what is on disk."""
    from ssseg.label import run_label

    try:
        return run_label(cfg, say)
    finally:
        if cfg.report:
            label_report(Path(cfg.out), say)


def report(cfg: ReportConfig, say: Say = print) -> Path:
    """``ssseg report``: the report.html of a label job or a run (and its JSON); returns the page's path."""
    from ssseg.report.write import write_report

    return write_report(cfg.target, cfg.out, say)


def label_report(out: Path, say: Say = print) -> None:
    """OUT/report.html of a label job that got as far as a summary."""
    from ssseg.label.records import summary_files

    if summary_files(out):  # else the job never started: nothing to report
        write_report_safely(out, say)


def write_report_safely(target: Path, say: Say = print) -> None:
    """TARGET/report.html of a finished run or label job; a report that fails is said, not raised: the run or
    the labels are complete either way, and ``ssseg report TARGET`` retries."""
    from ssseg.errors import SsegError, filesystem_error
    from ssseg.report.write import write_report

    try:
        write_report(target, say=say)
    except (SsegError, OSError) as e:  # a full disk: the run or the labels are kept all the same
        say(f"report not written: {filesystem_error(e) if isinstance(e, OSError) else e}")


@dataclass
class Prediction:
    """One image's result, at the image's own size."""

    labels: np.ndarray  # HxW uint8 class ids; 255 where the gate did not trust the pixel
    confidence: np.ndarray | None  # HxW float32 in [0, 1] (nearest from the model's size); None: ungated model
    classes: tuple[str, ...]  # the class names, by id


class Labeler:
    """A deployed model (the folder ``ssseg export`` wrote) as an object, the labeler ``ssseg label`` runs::

        labeler = ssseg.Labeler("runs/x/model", backend="ort")
        pred = labeler.predict("frame.jpg")        # or an HxWx3 uint8 RGB array, or a list of either
        pred.labels, pred.confidence

    Frames are read as ``ssseg label`` reads them (EXIF orientation applied, any pixel format as 8-bit RGB),
    resized to the model's input, run in batches of the model's optimal size, gated at the model's
    resolution (``threshold``: one for every class; default model.json's per-class table, else its
    threshold) and resized back with nearest-neighbour: the masks ``ssseg label`` writes for the same frames."""

    def __init__(self, model: str | Path, backend: str = "auto", threshold: float | None = None,
                 target_precision: float | None = None, threads: int | None = None):
        from ssseg.gate import applied
        from ssseg.runtime.backends import open_backend
        from ssseg.runtime.model import MODEL_FILE, read_model

        self.spec = read_model(model)
        self.threshold = applied(self.spec.gate.choose(threshold, target_precision, self.spec.root / MODEL_FILE))
        name, _, variant = backend.partition(":")
        self.backend = open_backend(self.spec, name, variant or None, threads=threads).load()
        self.classes = tuple(self.spec.classes.names)

    def predict(self, images) -> Prediction | list[Prediction]:
        """A Prediction for an image (a path or an HxWx3 uint8 RGB array), a list of them for a list."""
        from ssseg.gate import apply
        from ssseg.runtime.frames import resize_labels

        one = isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3)
        frames = [self._rgb(x) for x in ([images] if one else list(images))]
        batch = self.spec.batch_range[1]
        out = []
        for start in range(0, len(frames), batch):
            chunk = frames[start:start + batch]
            # full batches, the last padded with its last frame, as ssseg label runs them: the same numbers
            labels, conf = self.backend.infer([*chunk, *[chunk[-1]] * (batch - len(chunk))])
            for i, rgb in enumerate(chunk):
                c = None if conf is None else conf[i]
                kept = labels[i] if self.threshold is None or c is None else apply(labels[i], c, self.threshold)
                out.append(Prediction(resize_labels(kept, rgb.shape[:2]),
                                      None if c is None else _resize_float(c, rgb.shape[:2]), self.classes))
        return out[0] if one else out

    @staticmethod
    def _rgb(image) -> np.ndarray:
        if isinstance(image, (str, Path)):
            from ssseg.errors import DataError
            from ssseg.label.decode import DecodeError, RawFrame

            if not Path(image).is_file():
                raise DataError("image file is missing", path=image, fix="pass an image file or an RGB array")
            try:
                return RawFrame(0, "", None, Path(image)).rgb()
            except DecodeError as e:
                raise DataError(str(e), path=image, fix="pass a readable image (.png/.jpg/...)") from None
        return np.asarray(image)


def _resize_float(values: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if values.shape == tuple(hw):
        return values.astype(np.float32)
    from PIL import Image

    return np.asarray(Image.fromarray(values.astype(np.float32), mode="F").resize((hw[1], hw[0]), Image.NEAREST))
