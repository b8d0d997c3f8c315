"""Every command's options but training's, each declared once as a typed field with its default and help
(``option``): ssseg/cli_options.py builds the Typer command from the fields, and the Python API takes the same
objects. Also the parsers the commands share. Training's options live in ``ssseg.train.config``.

Over 300 lines on purpose: one file holds every command's options, so an option is found in one place."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from ssseg.errors import ConfigError


def option(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
           positional: bool = False) -> Any:
    """A command's option declared once: a typed field with its default (MISSING: required) and its help, from
    which ssseg/cli_options.py builds the Typer option (``flag``: a spelling other than --field-name; ``positional``:
    an argument, ``metavar`` its name in --help)."""
    return field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar, "positional": positional})


def parse_hw(text: str | tuple | list | None, what: str = "size") -> tuple[int, int] | None:
    """'512x1024' -> (512, 1024)."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = str(text).lower().replace("×", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not HxW", fix="write it as HEIGHTxWIDTH, e.g. 512x1024") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"{what} {text!r} must be positive", fix="write it as HEIGHTxWIDTH, e.g. 512x1024")
    return h, w


PRECISIONS = ("fp32", "fp16", "int8", "best")
ENGINE_GRAPHS = ("segmenter", "labeler")
DEFAULT_OPSET = 17  # the newest opset TensorRT 8.6 (the last release for Pascal cards) parses


# The gate's confidence sources (ssseg.gate re-exports them): declared here with the options they validate, so
# the CLI builds without numpy. Free sources: computed from the segmenter's softmax (no network, no cost).
FREE_SOURCES = ("softmax", "margin", "entropy")
# margin is measured by ssseg eval --gate but not exported: its top-2 needs TopK, which OpenCV 4.6's ONNX importer
# (ssseg-cpp's CPU backend) cannot parse
EXPORT_GATES = ("net", "softmax", "entropy", "none")
# the kept-pixel precision a free gate is calibrated for when neither --threshold nor --target-precision is given
DEFAULT_TARGET_PRECISION = 0.97


def parse_names(text: str | tuple | list) -> tuple[str, ...]:
    """'fp32, fp16' -> ('fp32', 'fp16'); a tuple as it is."""
    return tuple(v.strip() for v in text.split(",") if v.strip()) if isinstance(text, str) else tuple(text)


def parse_floats(text: str | tuple | list, what: str, example: str) -> tuple[float, ...]:
    """'0.9,0.97' -> (0.9, 0.97)."""
    try:
        return tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a list of numbers", fix=f"e.g. {what} {example}") from None


def parse_batch_range(text: str) -> tuple[int, int, int]:
    """'1:4:8' -> (min, opt, max) of a dynamic batch dimension."""
    try:
        lo, opt, hi = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"--dynamic-batch {text!r} is not MIN:OPT:MAX", fix="write it as e.g. 1:4:8") from None
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"--dynamic-batch {text!r} needs 1 <= MIN <= OPT <= MAX", fix="write it as e.g. 1:4:8")
    return lo, opt, hi


@dataclass
class ExportConfig:
    """``ssseg export``'s options, each declared once (ssseg/cli_options.py builds the command from these fields)."""

    run: Path = option(MISSING, "Run directory written by ssseg train.", positional=True, metavar="RUN")
    out: Path | None = option(None, "Model directory to write (default: RUN/model).")
    segmenter: Path | None = option(None, "Export this segmenter checkpoint instead of the run's final one.")
    onnx: bool = option(True, "Write the ONNX graphs (--no-onnx: build engines from an earlier export).")
    opset: int = option(DEFAULT_OPSET, "ONNX opset (TensorRT 8.6, the last release for Pascal cards, parses up to "
                                       "17).")
    input_size: tuple[int, int] | None = option(None, "Static input size HxW, multiples of 8 (default: the training "
                                                      "size).")
    batch: int = option(1, "Fixed batch size.")
    dynamic_batch: tuple[int, int, int] | None = option(None, "Dynamic batch MIN:OPT:MAX instead of --batch.")
    simplify: bool = option(True, "Clean the graphs with onnxslim.")
    verify: bool = option(True, "Compare ONNX Runtime with PyTorch; fail beyond tolerance.")
    calib_data: Path | None = option(None, "Folder of real frames for verification and INT8 calibration.")
    verify_images: int = option(8, "Frames compared in verification and engine checks.")
    threshold: float | None = option(None, "A fixed confidence threshold in model.json (--gate net without one: the "
                                           "run's --t-aux).")
    # max softmax is the default gate: it beat the paper's learned net in every measurement (docs/results.md,
    # "Confidence gates side by side") and costs the labeler nothing
    gate: str = option("softmax", "The labeler's confidence: net (the run's confidence net), softmax, entropy (from "
                                  "the segmenter's softmax, nearly free) or none; a free one without --threshold is "
                                  f"calibrated to {DEFAULT_TARGET_PRECISION:g} precision per class on --calib-split.")
    target_precision: tuple[float, ...] = option((), "Per-class thresholds at which each predicted class's kept "
                                                     "pixels reach this precision on --calib-split (comma-separated: "
                                                     "several tables, the first the default).")
    calib_split: str = option("auto", "The run's labeled split that --target-precision calibrates on: holdout (the "
                                      "images ssseg train --holdout kept out of training), val or test; auto: holdout "
                                      "when the run has one, else val.")
    trt: bool = option(False, "Also build TensorRT engines (needs tensorrt + pycuda and a GPU).")
    precision: tuple[str, ...] = option(("fp32",), "Precisions, comma-separated: fp32, fp16, int8 (reduced ONNX "
                                                   "graphs beside the FP32 ones, checked against them; int8 needs "
                                                   "--calib-data), and with --trt an engine of each (best: TensorRT "
                                                   "8.6's mixed mode).")
    calib_images: int = option(500, "INT8: calibration frames taken from --calib-data.")
    workspace_mb: int = option(2048, "TensorRT builder workspace limit in MiB.")
    timing_cache: Path | None = option(None, "TensorRT timing cache file (default: OUT/trt.timing.cache).")

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = Path(self.out) if self.out is not None else self.run / "model"
        self.segmenter = Path(self.segmenter) if self.segmenter is not None else None
        self.calib_data = Path(self.calib_data) if self.calib_data is not None else None
        self.timing_cache = Path(self.timing_cache) if self.timing_cache is not None else None
        self.input_size = parse_hw(self.input_size, "--input-size")
        if isinstance(self.dynamic_batch, str):
            self.dynamic_batch = parse_batch_range(self.dynamic_batch)
        if self.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {self.batch}")
        if not 7 <= self.opset <= 21:
            raise ConfigError(f"--opset {self.opset} is outside 7..21",
                              fix=f"use {DEFAULT_OPSET} (TensorRT 8.6 parses up to 17)")
        self.precision = parse_names(self.precision)
        bad = [p for p in self.precision if p not in PRECISIONS]
        if bad or not self.precision:
            raise ConfigError(f"unknown --precision {','.join(bad) or '(empty)'}",
                              fix=f"choose from {', '.join(PRECISIONS)}")
        if {"int8", "best"} & set(self.precision) and self.calib_data is None:
            raise ConfigError(f"--precision {'int8' if 'int8' in self.precision else 'best'} needs real frames to "
                              "calibrate on",
                              fix="pass --calib-data FOLDER (frames of the footage to label; a few hundred)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold {self.threshold} is outside [0, 1]", fix="pass a confidence such as 0.9")
        if self.gate == "margin":
            raise ConfigError("--gate margin is measured by ssseg eval --gate but not exported (its top-2 needs "
                              "TopK, which ssseg-cpp's OpenCV backend cannot parse)", fix="use softmax or entropy")
        if self.gate not in EXPORT_GATES:
            raise ConfigError(f"unknown --gate {self.gate!r}", fix=f"choose from {', '.join(EXPORT_GATES)}")
        self.target_precision = parse_floats(self.target_precision, "--target-precision", "0.95,0.97,0.99")
        bad_p = [p for p in self.target_precision if not 0.0 < p < 1.0]
        if bad_p:
            raise ConfigError(f"--target-precision {bad_p[0]} is outside (0, 1)", fix="e.g. 0.97")
        if self.gate == "none" and (self.target_precision or self.threshold is not None):
            raise ConfigError("--gate none writes ungated masks, so --threshold/--target-precision mean nothing",
                              fix="drop them, or choose a --gate")
        if self.gate in FREE_SOURCES and self.threshold is None and not self.target_precision:
            self.target_precision = (DEFAULT_TARGET_PRECISION,)
        for name in ("verify_images", "calib_images", "workspace_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (self.onnx or self.trt):
            raise ConfigError("nothing to export: --no-onnx without --trt", fix="drop --no-onnx or add --trt")

    @property
    def batch_range(self) -> tuple[int, int, int]:
        return self.dynamic_batch or (self.batch, self.batch, self.batch)


BENCH_STAGES = ("segmenter", "labeler", "labeler+host")


def parse_int_list(text: str | tuple | list, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a comma-separated list of integers",
                          fix=f"e.g. {what} 1,8") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{what} {text!r} needs positive integers", fix=f"e.g. {what} 1,8")
    return values


@dataclass
class BenchConfig:
    """``ssseg bench``'s options, each declared once (ssseg/cli_options.py builds the command from these fields)."""

    model: Path = option(MISSING, "Model directory written by ssseg export (holds model.json).", positional=True,
                         metavar="MODEL")
    backends: tuple[str, ...] = option(("auto",), "Comma-separated NAME[:VARIANT]: trt[:fp16|int8..], "
                                                  "ort[:cpu|cuda|tensorrt][+fp16|int8], "
                                                  "torch[:fp16+channels_last+compile+cudagraphs], auto.",
                                       flag="--backend")
    batch: tuple[int, ...] = option((1,), "Comma-separated batch sizes.")
    iters: int = option(100, "Timed calls per case.")
    warmup: int = option(20, "Untimed calls before timing.")
    input_size: tuple[int, int] | None = option(None, "HxW; must be the model's (graphs are static). Default: the "
                                                      "model's.")
    frame_size: tuple[int, int] = option((1080, 1920), "Decoded frame size for the labeler+host stage.")
    stages: tuple[str, ...] = option(BENCH_STAGES, "Which stages to time.")
    compare: bool = option(False, "Speed ratio of each backend to torch eager FP32 (added if absent).")
    run: Path | None = option(None, "torch backend: load this run's weights instead of model.json's.")
    threads: int | None = option(None, "ort on CPU: intra-op threads (default: the cores this process may use).")
    json: Path | None = option(None, "Write the results as JSON.")

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.run = Path(self.run) if self.run is not None else None
        self.json = Path(self.json) if self.json is not None else None
        self.backends = parse_names(self.backends)
        for b in self.backends:
            if b.split(":", 1)[0] not in ("auto", "trt", "ort", "torch"):
                raise ConfigError(f"unknown --backend {b!r}", fix="choose from trt, ort, torch, auto (NAME[:VARIANT])")
        self.batch = parse_int_list(self.batch, "--batch")
        self.stages = parse_names(self.stages)
        bad = [s for s in self.stages if s not in BENCH_STAGES]
        if bad or not self.stages:
            raise ConfigError(f"unknown --stages {','.join(bad)}", fix=f"choose from {', '.join(BENCH_STAGES)}")
        self.input_size = parse_hw(self.input_size, "--input-size")
        self.frame_size = parse_hw(self.frame_size, "--frame-size")
        if self.iters < 1 or self.warmup < 0:
            raise ConfigError(f"--iters must be >= 1 and --warmup >= 0 (got {self.iters}, {self.warmup})")


LABEL_FORMATS = ("png", "cityscapes", "camvid")
LABEL_BACKENDS = ("auto", "trt", "ort", "torch")
ORIENTATIONS = ("displayed", "stored")  # frames as viewers show them, or as stored


def parse_shard(text: str | tuple | None) -> tuple[int, int] | None:
    """'2/8' -> (2, 8): the third of eight shards, numbered from 0 like Slurm array task ids."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} is not I/N",
                          fix="e.g. --shard 0/4 ... --shard 3/4 "
                              "(--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r} needs 0 <= I < N",
                          fix=f"shards of {max(n, 1)} are numbered 0..{max(n, 1) - 1}")
    return i, n


@dataclass
class LabelConfig:
    """``ssseg label``'s options, each declared once (ssseg/cli_options.py builds the command from these fields)."""

    inputs: tuple[str, ...] = option(MISSING, "Video files, image folders, globs, list files (.txt, one input per "
                                              "line), stream URLs, /dev/videoN.", positional=True, metavar="INPUT...")
    model: Path = option(MISSING, "Model directory written by ssseg export (holds model.json).")
    out: Path = option(MISSING, "Output directory (created; refused if it holds other files).")
    threshold: float | None = option(None, "Confidence gate: pixels below it become 255 (default: model.json's "
                                           "per-class thresholds, else its threshold).")
    target_precision: float | None = option(None, "Or the per-class thresholds export calibrated for this precision "
                                                  "(ssseg export --target-precision).")
    every: int | None = option(None, "Label every K-th frame (default: every frame).")
    fps: float | None = option(None, "Or label F frames per second of video time (variable frame rates too).")
    batch: int | None = option(None, "Frames per inference call (default: the model's optimal batch).")
    backend: str = option("auto", "auto, trt[:PRECISION], ort[:PROVIDER][+PRECISION] (e.g. ort:int8), or torch, "
                                  "for comparisons.")
    format: str = option("png", "png, cityscapes or camvid (SegNet layout).")
    confidence: bool = option(False, "Also write the confidence map as an 8-bit PNG.")
    overlay: bool = option(False, "Also write an MP4 per source with the gated mask blended in.")
    min_coverage: float | None = option(None, "Skip writing frames whose confident share is below C (they are "
                                              "listed).")
    shard: tuple[int, int] | None = option(None, "I/N: label only shard I (0-based) of N, for N machines or array "
                                                 "jobs.")
    resume: bool = option(False, "Continue an interrupted job in --out: done frames are skipped.")
    threads: int | None = option(None, "ort on CPU: intra-op threads (default: the cores this process may use).")
    writers: int = option(2, "PNG-writing threads.")
    report: bool = option(False, "Also write OUT/report.html: coverage along the footage, frames to label next, "
                                 "damage, model and gate.")
    orientation: str = option("displayed", "displayed: turn frames as players and viewers do (a video's display "
                                           "matrix, EXIF orientation); stored: as stored.")
    recursive: bool = option(False, "Input folders: also label their subfolders and the videos in them.")

    def __post_init__(self) -> None:
        self.inputs = tuple(str(i) for i in self.inputs)
        self.model, self.out = Path(self.model), Path(self.out)
        if not self.inputs:
            raise ConfigError("no INPUT given", fix="pass video files, image folders, globs or list files")
        if self.orientation not in ORIENTATIONS:
            raise ConfigError(f"unknown --orientation {self.orientation!r}",
                              fix=f"choose from {', '.join(ORIENTATIONS)}")
        if self.format not in LABEL_FORMATS:
            raise ConfigError(f"unknown --format {self.format!r}", fix=f"choose from {', '.join(LABEL_FORMATS)}")
        if self.backend.split(":", 1)[0] not in LABEL_BACKENDS:
            raise ConfigError(f"unknown --backend {self.backend!r}", fix=f"choose from {', '.join(LABEL_BACKENDS)}")
        if self.every is not None and self.fps is not None:
            raise ConfigError("--every and --fps both given",
                              fix="sample by frame count (--every) or by time (--fps), not both")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every {self.every} must be >= 1")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps {self.fps} must be > 0")
        if self.batch is not None and self.batch < 1:
            raise ConfigError(f"--batch {self.batch} must be >= 1")
        if self.writers < 1:
            raise ConfigError(f"--writers {self.writers} must be >= 1")
        for name in ("threshold", "min_coverage", "target_precision"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} {value} must lie in [0, 1]")
        if self.threshold is not None and self.target_precision is not None:
            raise ConfigError("--threshold and --target-precision both given",
                              fix="one threshold for all classes (--threshold), or per-class ones (--target-precision)")
        self.shard = parse_shard(self.shard)


@dataclass
class EvalConfig:
    """``ssseg eval``'s options."""

    target: Path = option(MISSING, "Run directory (its final segmenter) or a checkpoint file.", positional=True,
                          metavar="TARGET")
    data: str | None = option(None, "Dataset SPEC (default: the one the run trained on).")
    split: str = option("val", "val, test, or holdout (the run's --holdout images).")
    json: Path | None = option(None, "Write the result here (default: next to the checkpoint).")
    scale: tuple[int, int] | None = option(None, "Evaluate at HxW (default: the run's --scale, else native).")
    gate: tuple[float, ...] = option((), "Measure the confidence gate at these thresholds, e.g. 0,0.7,0.8,0.9 (the "
                                         "run's confidence net, else max softmax), with every confidence source "
                                         "compared on the same pixels.")
    segmenter: Path | None = option(None, "With --gate: the segmenter to gate (default: the one the auxiliary net "
                                          "was trained against, stage 1).")
    target_precision: float | None = option(None, "With --gate: per-class thresholds at which each predicted "
                                                  "class's kept pixels reach this precision, for every confidence "
                                                  "source.")
    device: str = option("auto", "auto, cpu, cuda or cuda:N.")

    def __post_init__(self) -> None:
        self.target = Path(self.target)
        self.json = Path(self.json) if self.json is not None else None
        self.scale = parse_hw(self.scale, "--scale")
        self.gate = parse_floats(self.gate, "--gate", "0,0.7,0.8,0.9")


@dataclass
class ReportConfig:
    """``ssseg report``'s options."""

    target: Path = option(MISSING, "The --out folder of ssseg label (every shard together) or of ssseg train.",
                          positional=True, metavar="TARGET")
    out: Path | None = option(None, "Where to write the page (default: TARGET/report.html); its JSON goes beside it.")


@dataclass
class DemoConfig:
    """``ssseg demo``'s options."""

    out: Path = option(Path("runs/demo"), "Where the demo writes its run.")
    epochs: int = option(60, "Segmenter epochs (stages 1 and 3) on the synthetic data.")
    aux_epochs: int = option(20, "Auxiliary-net epochs (stage 2).")
    device: str = option("auto", "auto, cpu, cuda or cuda:N.")


@dataclass
class CheckConfig:
    """``ssseg data check``'s options."""

    spec: str = option(MISSING, "Dataset SPEC.", positional=True, metavar="SPEC")
    splits: tuple[str, ...] = option(("train", "val", "test"), "Comma-separated splits to check (missing ones are "
                                                               "reported).")
    skip_bad: bool = option(False, "Count bad samples instead of stopping at the first.")

    def __post_init__(self) -> None:
        self.splits = parse_names(self.splits)


@dataclass
class SynthConfig:
    """``ssseg data synth``'s options."""

    out: Path = option(MISSING, "Folder to write (folder layout: {split}/images, {split}/labels, classes.json).",
                       positional=True, metavar="OUT")
    size: tuple[int, int] = option((96, 128), "Image size HxW.")
    train: int = option(64, "Training images.")
    val: int = option(16, "Validation images.")
    test: int = option(16, "Test images.")
    seed: int = option(0, "Generator seed.")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.size = parse_hw(self.size, "--size")


def hw_str(hw: tuple[int, int] | list[int] | None) -> str:
    return "-" if hw is None else f"{hw[0]}x{hw[1]}"
