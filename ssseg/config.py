"""Typed run configuration: the CLI maps its options 1:1 onto these dataclasses.

Precedence: dataclass defaults < per-dataset paper defaults < ``--config FILE`` < explicit flags.
Fields left ``None`` mean "use the dataset's paper default" and are filled in by ``resolve``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ssseg.errors import ConfigError

# ImageNet statistics on 0..1 RGB; the segmenter is trained on images normalised with them and
# every deployment path (export, runtime, C++) reads them from the checkpoint or model.json.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

METHODS = ("supervised", "aux", "adversarial", "dual-disc", "latent", "self-train")
# Methods run as stages in stage1/ stage2/ stage3/ (resumable, skippable, --from-stage), and the stages whose
# segmenter is the run's final one, most advanced first (aux's stage 2 is the confidence net).
STAGED_METHODS = ("aux", "self-train")
SEGMENTER_STAGES = {"aux": (3, 1), "self-train": (3, 2, 1)}
# Where each method that trains a confidence source ("gater") keeps it, relative to the run directory.
GATER_DIRS = {"aux": "stage2", "adversarial": "gater", "dual-disc": "gater"}


def gater_threshold(config: dict) -> float:
    """A run's deployment threshold of its gater: --t-aux, --t-semi, or 0.5 for the two-discriminator gater
    (its confidence compares D2 with D1's per-image threshold, see DualDiscGater)."""
    method = config.get("method")
    if method == "adversarial":
        return float(config.get("t_semi", 0.2))
    if method == "dual-disc":
        return 0.5
    return float(config.get("t_aux", 0.9))


def parse_warmup(text: str | int, iterations_per_epoch: int) -> int:
    """--adv-warmup: iterations ("5000") or epochs ("10ep") -> iterations."""
    t = str(text).strip().lower()
    try:
        if t.endswith("ep"):
            return int(round(float(t[:-2]) * iterations_per_epoch))
        return int(t)
    except ValueError:
        raise ConfigError(f"--adv-warmup {text!r} is neither iterations nor epochs",
                          fix="e.g. --adv-warmup 5000 (iterations, the paper's) or --adv-warmup 10ep") from None
AUX_INPUTS = ("probs", "probs+rgb")
STAGE3_INITS = ("fresh", "finetune")

# The paper's schedules (section 4.2). Synthetic and folder data use the generic row.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "camvid": dict(lr=0.075, weight_decay=5e-4, batch_size=8, epochs=150, aug_scales=(0.8, 1.0, 1.3, 1.7),
                   aux_weight_decay=5e-4),
    "cityscapes": dict(lr=0.05, weight_decay=1e-4, batch_size=4, epochs=200, scale=(512, 1024),
                       aug_scales=(0.75, 1.0, 1.25, 1.5, 1.75), aux_weight_decay=1e-4),
    "generic": dict(lr=0.05, weight_decay=1e-4, batch_size=8, epochs=50, aug_scales=(0.75, 1.0, 1.25, 1.5),
                    aux_weight_decay=1e-4),
}


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


@dataclass
class TrainConfig:
    data: str = "synthetic"
    method: str = "aux"
    labeled_fraction: float = 1.0
    out: Path = Path("runs/train")
    model: str = "dsnet-fast-ss"
    epochs: int | None = None
    batch_size: int | None = None
    crop: tuple[int, int] | None = None
    scale: tuple[int, int] | None = None
    aug_scales: tuple[float, ...] | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    poly_power: float = 0.9
    class_weight_c: float = 1.1
    device: str = "auto"
    amp: bool = True
    workers: int = 2
    eval_every: int = 1
    seed: int = 0
    skip_bad: bool = False
    resume: bool = False
    # --method aux (stages 2 and 3); the paper's values
    aux_epochs: int = 50
    aux_lr: float = 5e-4
    aux_weight_decay: float | None = None
    aux_input: str = "probs"
    aux_class_weight_c: float = 1.04
    t_aux: float = 0.9
    stage3_init: str = "fresh"
    from_stage: int | None = None
    # --method adversarial (Hung et al.) and dual-disc; the papers' values
    adv_warmup: str = "5000"  # iterations, or epochs as "10ep", before the semi-supervised terms start
    lambda_adv: float = 0.01  # adversarial weight on labeled images (dual-disc: on all images)
    lambda_adv_unlabeled: float = 0.001
    lambda_semi: float = 0.1
    t_semi: float = 0.2  # adversarial: the discriminator confidence that admits a pseudo-label pixel
    disc_lr: float = 1e-4  # Adam, poly decay like the segmenter
    # --method latent (Zatsarynna et al.); also uses lambda_adv (0.01) and lambda_semi (0.1, L_unlabeled)
    latent_classes: int = 20
    # --method self-train (Ke et al.), stages 2 and 3
    st_lr: float = 5e-4  # Adam, poly decay; the paper's 3e-5 suits its pre-trained ResNet-101, see README
    lambda_con: float = 0.5
    lambda_pl: float = 0.5
    ema_decay: float = 0.99  # the mean teacher's
    st_all_batch: int | None = None  # images per step drawn from all training images; default batch_size // 2
    # staged methods (aux, self-train): stage 1 from another run (with --from-stage 2), and where to stop
    init: Path | None = None
    until_stage: int | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.init = Path(self.init) if self.init is not None else None
        self.crop = parse_hw(self.crop, "--crop")
        self.scale = parse_hw(self.scale, "--scale")
        if self.aug_scales is not None:
            self.aug_scales = tuple(float(s) for s in self.aug_scales)
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method {self.method!r}", fix=f"choose one of {', '.join(METHODS)}")
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise ConfigError(f"--labeled-fraction {self.labeled_fraction} is outside (0, 1]",
                              fix="pass a fraction such as 0.5")
        if self.aux_input not in AUX_INPUTS:
            raise ConfigError(f"unknown --aux-input {self.aux_input!r}", fix=f"choose one of {', '.join(AUX_INPUTS)}")
        if self.stage3_init not in STAGE3_INITS:
            raise ConfigError(f"unknown --stage3-init {self.stage3_init!r}", fix=f"choose one of {', '.join(STAGE3_INITS)}")
        if self.from_stage is not None and self.from_stage not in (1, 2, 3):
            raise ConfigError(f"--from-stage {self.from_stage} is not a stage", fix="pass 1, 2 or 3")
        if self.until_stage is not None and self.until_stage not in (1, 2, 3):
            raise ConfigError(f"--until-stage {self.until_stage} is not a stage", fix="pass 1, 2 or 3")
        if not 2 <= self.latent_classes <= 255:
            raise ConfigError(f"--latent-classes {self.latent_classes} is outside 2..255", fix="pass e.g. 20 (the paper's)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"--ema-decay {self.ema_decay} is outside [0, 1)", fix="pass e.g. 0.99")
        for name in ("lambda_con", "lambda_pl", "lambda_adv", "lambda_semi", "lambda_adv_unlabeled"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not self.st_lr > 0:
            raise ConfigError(f"--st-lr must be > 0, got {self.st_lr}")
        parse_warmup(self.adv_warmup, 1)
        if not 0.0 <= self.t_semi <= 1.0:
            raise ConfigError(f"--t-semi {self.t_semi} is outside [0, 1]", fix="pass a threshold such as 0.2")
        if not 0.0 <= self.t_aux <= 1.0:
            raise ConfigError(f"--t-aux {self.t_aux} is outside [0, 1]", fix="pass a confidence threshold such as 0.9")
        for name in ("epochs", "batch_size", "eval_every", "aux_epochs", "st_all_batch"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")

    def resolve(self, dataset_kind: str) -> "TrainConfig":
        """Fill every ``None`` from the paper defaults of ``dataset_kind``."""
        defaults = DATASET_DEFAULTS.get(dataset_kind, DATASET_DEFAULTS["generic"])
        updates = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["init"] = None if self.init is None else str(self.init)
        for k in ("crop", "scale", "aug_scales"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


PRECISIONS = ("fp32", "fp16", "int8", "best")
ENGINE_GRAPHS = ("segmenter", "labeler")
DEFAULT_OPSET = 17  # the newest opset TensorRT 8.6 (the last release for Pascal cards) parses


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
    run: Path
    out: Path | None = None  # default: RUN/model
    segmenter: Path | None = None  # default: the run's final segmenter
    onnx: bool = True
    opset: int = DEFAULT_OPSET
    input_size: tuple[int, int] | None = None  # default: the training size
    batch: int = 1
    dynamic_batch: tuple[int, int, int] | None = None
    simplify: bool = True
    verify: bool = True
    calib_data: Path | None = None
    verify_images: int = 8
    threshold: float | None = None  # default: the run's --t-aux
    trt: bool = False
    precision: tuple[str, ...] = ("fp16",)
    calib_images: int = 500
    workspace_mb: int = 2048
    timing_cache: Path | None = None  # default: OUT/trt.timing.cache

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = Path(self.out) if self.out is not None else self.run / "model"
        self.segmenter = Path(self.segmenter) if self.segmenter is not None else None
        self.calib_data = Path(self.calib_data) if self.calib_data is not None else None
        self.timing_cache = Path(self.timing_cache) if self.timing_cache is not None else None
        self.input_size = parse_hw(self.input_size, "--input-size")
        if self.input_size and any(v % 8 for v in self.input_size):
            raise ConfigError(f"--input-size {hw_str(self.input_size)} is not a multiple of 8",
                              fix=f"pass e.g. {hw_str(round_hw(self.input_size))} (TensorRT kernels and the "
                                  f"segmenter's strides want multiples of 8)")
        if isinstance(self.dynamic_batch, str):
            self.dynamic_batch = parse_batch_range(self.dynamic_batch)
        if self.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {self.batch}")
        if not 7 <= self.opset <= 21:
            raise ConfigError(f"--opset {self.opset} is outside 7..21", fix=f"use {DEFAULT_OPSET} (TensorRT 8.6 parses up to 17)")
        if isinstance(self.precision, str):
            self.precision = tuple(p.strip() for p in self.precision.split(",") if p.strip())
        bad = [p for p in self.precision if p not in PRECISIONS]
        if bad or not self.precision:
            raise ConfigError(f"unknown --precision {','.join(bad) or '(empty)'}", fix=f"choose from {', '.join(PRECISIONS)}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold {self.threshold} is outside [0, 1]", fix="pass a confidence such as 0.9")
        for name in ("verify_images", "calib_images", "workspace_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (self.onnx or self.trt):
            raise ConfigError("nothing to export: --no-onnx without --trt", fix="drop --no-onnx or add --trt")

    @property
    def batch_range(self) -> tuple[int, int, int]:
        return self.dynamic_batch or (self.batch, self.batch, self.batch)


def round_hw(hw: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """The nearest size at or above ``hw`` whose sides divide ``multiple``."""
    return tuple(multiple * -(-v // multiple) for v in hw)


BENCH_STAGES = ("segmenter", "labeler", "labeler+host")


def parse_int_list(text: str | tuple | list, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a comma-separated list of integers", fix=f"e.g. {what} 1,8") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{what} {text!r} needs positive integers", fix=f"e.g. {what} 1,8")
    return values


@dataclass
class BenchConfig:
    model: Path
    backends: tuple[str, ...] = ("auto",)  # each NAME[:VARIANT]: trt[:fp16], ort[:cuda], torch[:fp16+cudagraphs]
    batch: tuple[int, ...] = (1,)
    iters: int = 100
    warmup: int = 20
    input_size: tuple[int, int] | None = None  # must be the model's (graphs are static); default: the model's
    frame_size: tuple[int, int] = (1080, 1920)  # decoded frame size for the labeler+host stage
    stages: tuple[str, ...] = BENCH_STAGES
    compare: bool = False
    run: Path | None = None
    threads: int | None = None
    json: Path | None = None

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.run = Path(self.run) if self.run is not None else None
        self.json = Path(self.json) if self.json is not None else None
        if isinstance(self.backends, str):
            self.backends = tuple(b.strip() for b in self.backends.split(",") if b.strip())
        for b in self.backends:
            if b.split(":", 1)[0] not in ("auto", "trt", "ort", "torch"):
                raise ConfigError(f"unknown --backend {b!r}", fix="choose from trt, ort, torch, auto (NAME[:VARIANT])")
        self.batch = parse_int_list(self.batch, "--batch")
        if isinstance(self.stages, str):
            self.stages = tuple(s.strip() for s in self.stages.split(",") if s.strip())
        bad = [s for s in self.stages if s not in BENCH_STAGES]
        if bad or not self.stages:
            raise ConfigError(f"unknown --stages {','.join(bad)}", fix=f"choose from {', '.join(BENCH_STAGES)}")
        self.input_size = parse_hw(self.input_size, "--input-size")
        self.frame_size = parse_hw(self.frame_size, "--frame-size")
        if self.iters < 1 or self.warmup < 0:
            raise ConfigError(f"--iters must be >= 1 and --warmup >= 0 (got {self.iters}, {self.warmup})")


LABEL_FORMATS = ("png", "cityscapes", "camvid")
LABEL_BACKENDS = ("auto", "trt", "ort", "torch")


def parse_shard(text: str | tuple | None) -> tuple[int, int] | None:
    """'2/8' -> (2, 8): the third of eight shards, numbered from 0 like Slurm array task ids."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} is not I/N", fix="e.g. --shard 0/4 ... --shard 3/4 "
                                                             "(--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r} needs 0 <= I < N", fix=f"shards of {max(n, 1)} are numbered 0..{max(n, 1) - 1}")
    return i, n


@dataclass
class LabelConfig:
    inputs: tuple[str, ...]  # video files, image folders, globs, list files (.txt), stream URLs, camera devices
    model: Path
    out: Path
    threshold: float | None = None  # default: model.json's gate.threshold
    every: int | None = None  # label every K-th frame
    fps: float | None = None  # or sample F frames per second of video time
    batch: int | None = None  # default: the model's optimal batch
    backend: str = "auto"
    format: str = "png"
    confidence: bool = False
    overlay: bool = False
    min_coverage: float | None = None
    shard: tuple[int, int] | None = None
    resume: bool = False
    threads: int | None = None  # ORT intra-op threads (default: the cores this process may use)
    writers: int = 2  # PNG encoding threads

    def __post_init__(self) -> None:
        self.inputs = tuple(str(i) for i in self.inputs)
        self.model, self.out = Path(self.model), Path(self.out)
        if not self.inputs:
            raise ConfigError("no INPUT given", fix="pass video files, image folders, globs or list files")
        if self.format not in LABEL_FORMATS:
            raise ConfigError(f"unknown --format {self.format!r}", fix=f"choose from {', '.join(LABEL_FORMATS)}")
        if self.backend.split(":", 1)[0] not in LABEL_BACKENDS:
            raise ConfigError(f"unknown --backend {self.backend!r}", fix=f"choose from {', '.join(LABEL_BACKENDS)}")
        if self.every is not None and self.fps is not None:
            raise ConfigError("--every and --fps both given", fix="sample by frame count (--every) or by time (--fps), not both")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every {self.every} must be >= 1")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps {self.fps} must be > 0")
        if self.batch is not None and self.batch < 1:
            raise ConfigError(f"--batch {self.batch} must be >= 1")
        if self.writers < 1:
            raise ConfigError(f"--writers {self.writers} must be >= 1")
        for name in ("threshold", "min_coverage"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} {value} must lie in [0, 1]")
        self.shard = parse_shard(self.shard)


# Options that may change between an interrupted run and its --resume without changing the result.
RESUME_MUTABLE = frozenset({"device", "workers", "resume", "out", "from_stage", "until_stage"})

# The first stage of --method aux that each option affects: `--from-stage N` may change the options of
# stages >= N only (stage 1 options that stage 3 reuses, such as --epochs, are listed under 1). The options
# that define the labeled/unlabeled split (stage 0) never change within a run.
SPLIT_OPTIONS = frozenset({"data", "labeled_fraction", "seed"})
STAGE2_OPTIONS = frozenset({"aux_epochs", "aux_lr", "aux_weight_decay", "aux_input", "aux_class_weight_c",
                            "st_lr", "lambda_con", "lambda_pl", "ema_decay", "st_all_batch"})
STAGE3_OPTIONS = frozenset({"t_aux", "stage3_init"})


def first_stage_of(option: str) -> int:
    if option in SPLIT_OPTIONS:
        return 0
    if option in STAGE3_OPTIONS:
        return 3
    if option in STAGE2_OPTIONS:
        return 2
    return 1


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file of TrainConfig fields (dashes or underscores)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file ({e.strerror})", path=p, fix="check the --config path") from None
    try:
        if p.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - parser errors differ between json and yaml
        raise ConfigError(f"not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({e})".splitlines()[0],
                          path=p, fix="fix the syntax") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("must hold a mapping of option names to values", path=p)
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown option {key!r}", path=p, fix=f"known options: {', '.join(sorted(known))}")
        out[name] = value
    return out


def build_train_config(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Merge a config file and the flags the user actually gave (``None`` = not given)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise ConfigError(f"bad configuration: {e}") from None


def hw_str(hw: tuple[int, int] | list[int] | None) -> str:
    return "-" if hw is None else f"{hw[0]}x{hw[1]}"


__all__ = ["TrainConfig", "ExportConfig", "BenchConfig", "BENCH_STAGES", "parse_int_list", "PRECISIONS", "ENGINE_GRAPHS", "DEFAULT_OPSET", "parse_batch_range",
           "round_hw", "build_train_config", "load_config_file", "parse_hw", "hw_str", "MEAN", "STD",
           "METHODS", "STAGED_METHODS", "SEGMENTER_STAGES", "DATASET_DEFAULTS", "RESUME_MUTABLE", "AUX_INPUTS", "STAGE3_INITS",
           "first_stage_of"]
