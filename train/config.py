"""Training options, each declared once: a typed field with its default and its help. ``ssseg train``'s options
(ssseg/cli_options.py), ``--config FILE`` and a run's config.json are built from these fields, one help panel per group.

Shared options live in ``CommonOptions``; each method's own in its group, which names the methods that read it
(``METHODS``: name -> one-line description). That is also how ``--method`` knows the methods without importing
torch, and it titles the group's --help panel unless the group has a ``PANEL``. ``TrainConfig`` is all groups
together, so a run's config stays one flat record with the option names users know. A new method adds its group
here and to ``TrainConfig``'s bases, and its file under train/methods/.

Over 300 lines on purpose: every training option in one file, one group per method, so an option is found in
one place.

Precedence: field defaults < the dataset's paper defaults (fields left ``None``) < ``--config FILE`` < flags."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ssseg.config import parse_hw
from ssseg.errors import ConfigError
from ssseg.segmenters import DEFAULT_SEGMENTER, SPECS, get_spec

# The paper's schedules (section 4.2); synthetic and folder data use the generic row. Fields left None take these.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "camvid": dict(lr=0.075, weight_decay=5e-4, batch_size=8, epochs=150, aug_scales=(0.8, 1.0, 1.3, 1.7),
                   aux_weight_decay=5e-4),
    "cityscapes": dict(lr=0.05, weight_decay=1e-4, batch_size=4, epochs=200, scale=(512, 1024),
                       aug_scales=(0.75, 1.0, 1.25, 1.5, 1.75), aux_weight_decay=1e-4),
    "generic": dict(lr=0.05, weight_decay=1e-4, batch_size=8, epochs=50, aug_scales=(0.75, 1.0, 1.25, 1.5),
                    aux_weight_decay=1e-4),
}
PAPER_DEFAULT = "the dataset's paper schedule"  # how --help shows the fields that take DATASET_DEFAULTS
RECIPE_DEFAULT = "the segmenter's recipe"  # ... and those a segmenter's spec sets (ssseg/segmenters.py)
OPTIMIZERS = ("sgd", "adamw", "adam")


def option(default: Any, help: str, *, stage: int = 1, resumable: bool = False, cli: bool = True,
           many: bool = False) -> Any:
    """A config field. ``stage``: the first stage of a staged method the option affects (0: it defines the
    labeled/unlabeled split and never changes within a run); ``--from-stage N`` may change options of stages
    >= N only. ``resumable``: ``--resume`` may change it (where the run happens, not what it computes).
    ``many``: a list, given as a repeated option."""
    return field(default=default, metadata={"help": help, "stage": stage, "resumable": resumable, "cli": cli,
                                            "many": many})


def check_range(name: str, value: float | int | None, low: float, high: float | None = None, example: str = "") -> None:
    if value is None or (value >= low and (high is None or value <= high)):
        return
    where = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    raise ConfigError(f"--{name.replace('_', '-')} {value} is outside {where}",
                      fix=f"pass e.g. {example}" if example else None)


@dataclass
class CommonOptions:
    PANEL: ClassVar[str] = "Every method"
    METHODS: ClassVar[dict[str, str]] = {
        "supervised": "the segmenter on the labeled images alone (every method's baseline)"}

    data: str = option("synthetic", "Dataset SPEC: camvid:PATH, cityscapes:PATH, folder:PATH or synthetic[:opts].",
                       stage=0)
    method: str = option("aux", "Training method (see the panels below for each method's options).")
    labeled_fraction: float = option(1.0, "Share of the training images used as labeled.", stage=0)
    holdout: tuple[str, ...] = option((), "Keep the training images whose name starts with this prefix (a drive, "
                                          "e.g. 0001TP; repeat the option) out of training, labeled and unlabeled: "
                                          "the gate is calibrated on them (export's --calib-split auto), because "
                                          "thresholds fitted on a drive the segmenter trained on overstate their "
                                          "precision on new footage.", stage=0, many=True)
    out: Path = option(Path("runs/train"), "Run directory.", resumable=True)
    model: str = option(DEFAULT_SEGMENTER, "The segmenter: " + "; ".join(f"{n}: {s.describe()}"
                                                                       for n, s in SPECS.items()) + ".")
    pretrained: bool = option(True, "Start the segmenter's encoder from its ImageNet weights (segmenters that have "
                                    "them).")
    freeze_bn: bool | None = option(None, "Keep the pretrained encoder's BatchNorm statistics (eval mode) while "
                                          "training.")
    epochs: int | None = option(None, "Segmenter epochs.")
    batch_size: int | None = option(None, "Images per step and process.")
    crop: tuple[int, int] | None = option(None, "Random-crop size HxW (default: the image size after --scale).")
    scale: tuple[int, int] | None = option(None, "Resize images to HxW before training, e.g. 512x1024 (none: as "
                                                 "stored).")
    aug_scales: tuple[float, ...] | None = option(None, "Random rescale factors, comma-separated, e.g. 0.75,1,1.25.")
    optimizer: str | None = option(None, f"The segmenter's optimiser: {', '.join(OPTIMIZERS)}.")
    lr: float | None = option(None, "Initial learning rate of the segmenter (poly decay after the warm-up).")
    weight_decay: float | None = option(None, "Weight decay of the segmenter's weights (never of norms and biases).")
    encoder_lr_mult: float | None = option(None, "Learning-rate multiplier of the pretrained encoder's parameters, "
                                                 "in every optimiser that trains them.")
    warmup: int | None = option(None, "Linear learning-rate warm-up, in iterations (every optimiser).")
    momentum: float = option(0.9, "SGD momentum.")
    poly_power: float = option(0.9, "Power of the poly learning-rate decay.")
    class_weight_c: float = option(1.1, "ENet class weights 1 / ln(c + pixel share) of the segmenter loss.")
    device: str = option("auto", "auto, cpu, cuda or cuda:N.", resumable=True)
    amp: bool = option(True, "Mixed precision on CUDA.")
    workers: int = option(2, "Data-loading worker processes.", resumable=True)
    eval_every: int = option(1, "Validate every N epochs (and after the last).")
    seed: int = option(0, "Seed of the split, initialisation and augmentation.", stage=0)
    skip_bad: bool = option(False, "Warn about and count unreadable samples (and unlabeled sources) instead of "
                                   "stopping.")
    strong_aug: bool = option(False, "Strong augmentation of the labeled batches (colour jitter, grayscale, blur, "
                                     "CutMix), as weak-strong gives its unlabeled ones: the fair supervised control "
                                     "(supervised, the staged methods' segmenter stages, weak-strong's labeled batch).")
    resume: bool = option(False, "Continue the run in --out (finished stages are skipped).", resumable=True)
    report: bool = option(True, "When the run ends, measure its gate on the val split (gate_val.json) and write "
                                "report.html (ssseg report RUN does it later).", resumable=True)

    def check_common(self) -> None:
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise ConfigError(f"--labeled-fraction {self.labeled_fraction} is outside (0, 1]",
                              fix="pass a fraction such as 0.5")
        for name in ("epochs", "batch_size", "eval_every"):
            check_range(name, getattr(self, name), 1)
        check_range("workers", self.workers, 0)
        check_range("warmup", self.warmup, 0)
        check_range("encoder_lr_mult", self.encoder_lr_mult, 0.0, example="0.1")
        get_spec(self.model)
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown --optimizer {self.optimizer!r}", fix=f"choose one of {', '.join(OPTIMIZERS)}")


@dataclass
class StagedOptions:
    PANEL: ClassVar[str] = "Staged methods (aux, self-train)"
    METHODS: ClassVar[dict[str, str]] = {}

    from_stage: int | None = option(None, "Redo an existing run from stage N (1-3); earlier stages are kept.",
                                    resumable=True)
    init: Path | None = option(None, "With --from-stage 2: stage 1 is this run's final segmenter (RUN_DIR or .pt).")
    until_stage: int | None = option(None, "Stop after stage N (e.g. 2: an auxiliary net for an --init segmenter).",
                                     resumable=True)

    def check_staged(self) -> None:
        for name in ("from_stage", "until_stage"):
            value = getattr(self, name)
            if value is not None and value not in (1, 2, 3):
                raise ConfigError(f"--{name.replace('_', '-')} {value} is not a stage", fix="pass 1, 2 or 3")


@dataclass
class FootageOptions:
    PANEL: ClassVar[str] = "Unlabeled footage (the semi-supervised methods)"
    METHODS: ClassVar[dict[str, str]] = {}

    unlabeled: tuple[str, ...] = option((), "Unlabeled images for training: videos, image folders, globs, list files "
                                            "(repeat the option). Frames are decoded once into RUN/footage/.",
                                        stage=0, many=True)
    unlabeled_every: int = option(1, "Take every N-th frame of the --unlabeled videos and folders.", stage=0)
    unlabeled_max_frames: int = option(20000, "At most this many --unlabeled frames in all (the cache on disk: about "
                                              "15 KB a frame at 180x240, 100 KB at 512x1024); past it each source "
                                              "keeps its share, spread over its whole length.", stage=0)
    unlabeled_split: bool = option(True, "Also use the dataset's own unlabeled split (the training images left "
                                         "unlabeled by --labeled-fraction).", stage=0)

    def check_footage(self) -> None:
        check_range("unlabeled_every", self.unlabeled_every, 1)
        check_range("unlabeled_max_frames", self.unlabeled_max_frames, 1)


AUX_INPUTS = ("probs", "probs+rgb")
STAGE3_INITS = ("fresh", "finetune")


@dataclass
class AuxOptions:
    METHODS: ClassVar[dict[str, str]] = {
        "aux": "the paper's three stages: segmenter, auxiliary confidence net, gated pseudo-labels and retraining"}

    aux_epochs: int = option(50, "Epochs of the auxiliary net (stage 2).", stage=2)
    aux_lr: float = option(5e-4, "Adam learning rate of the auxiliary net.", stage=2)
    aux_weight_decay: float | None = option(None, "Its weight decay (CamVid 5e-4, others 1e-4).", stage=2)
    aux_input: str = option("probs", f"What the auxiliary net sees: {' or '.join(AUX_INPUTS)}.", stage=2)
    aux_class_weight_c: float = option(1.04, "ENet class-weight c of the auxiliary loss.", stage=2)
    aux_width: float = option(1.0, "Channel multiplier of the auxiliary net: 1 is the paper's (4x the segmenter's "
                                   "multiply-adds), 0.125 a light gate at about 7 %.", stage=2)
    aux_strong_view: bool = option(False, "Train the auxiliary net on the segmenter's predictions of colour-jittered, "
                                          "grayscaled and blurred labeled images, where it errs more as on new "
                                          "footage (on its own training images stage 1 is mostly right).", stage=2)
    t_aux: float = option(0.9, "Confidence threshold of the pseudo-labels (and the exported gate).", stage=3)
    stage3_init: str = option("fresh", f"The stage-3 segmenter starts {' or '.join(STAGE3_INITS)} (from stage 1).",
                              stage=3)
    stage3_epochs: int | None = option(None, "Epochs of the stage-3 segmenter (default: --epochs). Its epochs pass "
                                             "over the pseudo-labeled images too, so stage 1's step budget takes "
                                             "fewer.", stage=3)

    def check_aux(self) -> None:
        if self.aux_input not in AUX_INPUTS:
            raise ConfigError(f"unknown --aux-input {self.aux_input!r}", fix=f"choose one of {', '.join(AUX_INPUTS)}")
        if self.stage3_init not in STAGE3_INITS:
            raise ConfigError(f"unknown --stage3-init {self.stage3_init!r}",
                              fix=f"choose one of {', '.join(STAGE3_INITS)}")
        check_range("t_aux", self.t_aux, 0.0, 1.0, "0.9")
        check_range("aux_epochs", self.aux_epochs, 1)
        if self.stage3_epochs is not None:
            check_range("stage3_epochs", self.stage3_epochs, 1)
        if not 0.0 < self.aux_width <= 1.0:
            raise ConfigError(f"--aux-width {self.aux_width} is outside (0, 1]", fix="e.g. 0.125 for a light gate")


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


@dataclass
class AdversarialOptions:
    PANEL: ClassVar[str] = "--method adversarial, dual-disc, latent"
    METHODS: ClassVar[dict[str, str]] = {
        "adversarial": "Hung et al.: a per-pixel discriminator judges predictions and gates self-training",
        "dual-disc": "an image-level and a per-pixel discriminator; the second gates the pseudo-labels",
    }

    adv_warmup: str = option("5000", "adversarial, dual-disc: iterations (5000) or epochs (10ep) before the "
                                     "semi-supervised terms start.")
    lambda_adv: float = option(0.01, "Adversarial weight on labeled images (dual-disc: on all images).")
    lambda_adv_unlabeled: float = option(0.001, "adversarial: adversarial weight on unlabeled images.")
    lambda_semi: float = option(0.1, "Weight of the pseudo-label loss (latent: of L_unlabeled).")
    t_semi: float = option(0.2, "adversarial: discriminator confidence that admits a pseudo-label pixel "
                                "(and the exported gate).")
    disc_lr: float = option(1e-4, "Adam learning rate of the discriminators (poly decay).")

    def check_adversarial(self) -> None:
        for name in ("lambda_adv", "lambda_semi", "lambda_adv_unlabeled"):
            check_range(name, getattr(self, name), 0.0)
        parse_warmup(self.adv_warmup, 1)
        check_range("t_semi", self.t_semi, 0.0, 1.0, "0.2")


@dataclass
class LatentOptions:
    METHODS: ClassVar[dict[str, str]] = {
        "latent": "Zatsarynna et al.: latent classes supervise the unlabeled images (uses lambda-adv, lambda-semi, "
                  "disc-lr)"}

    latent_classes: int = option(20, "Number of latent classes.")

    def check_latent(self) -> None:
        if not 2 <= self.latent_classes <= 255:
            raise ConfigError(f"--latent-classes {self.latent_classes} is outside 2..255",
                              fix="pass e.g. 20 (the paper's)")


@dataclass
class SelfTrainOptions:
    METHODS: ClassVar[dict[str, str]] = {
        "self-train": "Ke et al.: three stages of multi-task self-training with a mean teacher"}

    st_lr: float = option(5e-4, "Adam learning rate of stages 2 and 3 (the paper's 3e-5 suits its pre-trained "
                                "ResNet-101).", stage=2)
    lambda_con: float = option(0.5, "Weight of the mean-teacher consistency loss.", stage=2)
    lambda_pl: float = option(0.5, "Weight of the pseudo-mask head's loss.", stage=2)
    ema_decay: float = option(0.99, "The mean teacher's EMA decay (self-train, weak-strong).", stage=2)
    st_all_batch: int | None = option(None, "Images per step drawn from all training images (default: half "
                                            "--batch-size).", stage=2)

    def check_self_train(self) -> None:
        for name in ("lambda_con", "lambda_pl"):
            check_range(name, getattr(self, name), 0.0)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"--ema-decay {self.ema_decay} is outside [0, 1)", fix="pass e.g. 0.99")
        if not self.st_lr > 0:
            raise ConfigError(f"--st-lr must be > 0, got {self.st_lr}")
        check_range("st_all_batch", self.st_all_batch, 1)


SELECTIONS = ("softmax", "class-balanced", "aux")


@dataclass
class WeakStrongOptions:
    METHODS: ClassVar[dict[str, str]] = {
        "weak-strong": "a mean teacher labels weakly augmented unlabeled images; the student learns those labels on "
                       "strongly augmented (CutMix) and feature-perturbed views (FixMatch/UniMatch-style)"}

    select: str = option("class-balanced", f"Which pseudo-label pixels count: {', '.join(SELECTIONS)} (max softmax "
                                           "with a per-class threshold lowered until --min-class-share of each "
                                           "predicted class passes), or aux (a trained confidence net, --select-gater, "
                                           "at --t-aux).")
    select_threshold: float = option(0.95, "softmax, class-balanced: the teacher's max softmax a pixel needs.")
    min_class_share: float = option(0.3, "class-balanced: the share of each predicted class's pixels that passes "
                                         "at least.")
    select_gater: Path | None = option(None, "aux: the confidence net (a run directory with one, or its best.pt).")
    lambda_u: float = option(1.0, "Weight of the unlabeled losses (half strong view, half feature-perturbed view).")
    unlabeled_batch: int | None = option(None, "Unlabeled images per step (default: --batch-size).")
    unlabeled_warmup: float = option(0.25, "Share of the steps trained on labeled images alone before the unlabeled "
                                           "losses start; the teacher starts there as a copy of the student (a "
                                           "segmenter trained from scratch labels nothing useful at first).")

    def check_weak_strong(self) -> None:
        if self.select not in SELECTIONS:
            raise ConfigError(f"unknown --select {self.select!r}", fix=f"choose one of {', '.join(SELECTIONS)}")
        check_range("select_threshold", self.select_threshold, 0.0, 1.0, "0.95")
        check_range("min_class_share", self.min_class_share, 0.0, 1.0, "0.3")
        check_range("lambda_u", self.lambda_u, 0.0)
        check_range("unlabeled_batch", self.unlabeled_batch, 1)
        if not 0.0 <= self.unlabeled_warmup < 1.0:
            raise ConfigError(f"--unlabeled-warmup {self.unlabeled_warmup} is outside [0, 1)",
                              fix="pass the share of the steps before the unlabeled losses start, e.g. 0.25")
        if self.select == "aux" and self.select_gater is None and self.method == "weak-strong":
            raise ConfigError("--select aux needs the confidence net", fix="pass --select-gater RUN (a --method aux "
                                                                            "run on this split) or its stage2/best.pt")


GROUPS = (CommonOptions, FootageOptions, StagedOptions, AuxOptions, AdversarialOptions, LatentOptions,
          SelfTrainOptions, WeakStrongOptions)


@dataclass
class TrainConfig(WeakStrongOptions, SelfTrainOptions, LatentOptions, AdversarialOptions, AuxOptions, StagedOptions,
                  FootageOptions, CommonOptions):
    """Every training option: the groups above in one flat record (config.json, --config FILE)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.init = Path(self.init) if self.init is not None else None
        self.select_gater = Path(self.select_gater) if self.select_gater is not None else None
        self.unlabeled = (self.unlabeled,) if isinstance(self.unlabeled, str) else tuple(str(u) for u in self.unlabeled)
        self.crop = parse_hw(self.crop, "--crop")
        self.scale = parse_hw(self.scale, "--scale")
        if isinstance(self.aug_scales, str):
            self.aug_scales = self.aug_scales.split(",")
        if self.aug_scales is not None:
            try:
                self.aug_scales = tuple(float(s) for s in self.aug_scales)
            except ValueError:
                raise ConfigError(f"--aug-scales {self.aug_scales!r} is not a list of numbers",
                                  fix="e.g. 0.75,1,1.25") from None
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method {self.method!r}", fix=f"choose one of {', '.join(METHODS)}")
        for group in GROUPS:  # each group checks its own fields
            for name, check in vars(group).items():
                if name.startswith("check_"):
                    check(self)

    def resolve(self, dataset_kind: str) -> "TrainConfig":
        """Fill every ``None`` from the segmenter's recipe, then from the paper defaults of ``dataset_kind``: the
        recipe first, as fine-tuning an ImageNet encoder wants another optimiser than the paper's from-scratch net."""
        defaults = {**DATASET_DEFAULTS.get(dataset_kind, DATASET_DEFAULTS["generic"]), **get_spec(self.model).recipe}
        updates = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["init"] = None if self.init is None else str(self.init)
        d["select_gater"] = None if self.select_gater is None else str(self.select_gater)
        d["unlabeled"] = list(self.unlabeled)
        for k in ("crop", "scale", "aug_scales"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


METHODS: dict[str, str] = {name: text for group in GROUPS for name, text in group.METHODS.items()}


def panel(group: type) -> str:
    """The --help panel of an option group: its own title, else the methods it belongs to."""
    return group.__dict__.get("PANEL") or "--method " + ", ".join(group.METHODS)
FIELDS = {f.name: f for f in fields(TrainConfig)}
RESUMABLE = frozenset(name for name, f in FIELDS.items() if f.metadata["resumable"])
SPLIT_OPTIONS = frozenset(name for name, f in FIELDS.items() if f.metadata["stage"] == 0)


def default_of(name: str) -> Any:
    return FIELDS[name].default


def first_stage_of(name: str) -> int:
    return FIELDS[name].metadata["stage"]


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
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"unknown option {key!r}", path=p, fix=f"known options: {', '.join(sorted(FIELDS))}")
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
