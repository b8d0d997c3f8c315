"""The real-time segmenter: the auxiliary-network paper's DSNet-fast derivative (paper 3.2.1).

Encoder: initial block -> block 1 (1/4, two-branch non-bottleneck units) -> block 2 (1/8, the
same units) -> block 3 (1/16) and block 4 (1/32) of DSNet-fast dense bottleneck units (growth
rate 32) joined by transition layers. Decoder: a 3x3 conv on each block's output ({24, 32, 16,
24} channels), bilinear up-sampling to 1/4, concatenation, and an 8x8 stride-4 deconvolution to
the class map. The paper's figures with exact widths did not survive; the defaults below give
2.1M parameters at 19 classes, the paper's 2.11M."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssseg.models.base import SegmenterBase, register_segmenter
from ssseg.models.layers import ConvBNReLU, deconv_x4


class InitialBlock(nn.Module):
    """3x3 s2 conv, then a 1x1 branch (cheap, small receptive field) beside two stacked 3x3 convs,
    concatenated and 2x2 average-pooled: 1/4 resolution."""

    def __init__(self, cin: int, stem: int, left: int, right: int):
        super().__init__()
        self.stem = ConvBNReLU(cin, stem, 3, stride=2)
        self.left = ConvBNReLU(stem, left, 1)
        self.right = nn.Sequential(ConvBNReLU(stem, right // 2), ConvBNReLU(right // 2, right))
        self.pool = nn.AvgPool2d(2)
        self.out_channels = left + right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.pool(torch.cat([self.left(x), self.right(x)], 1))


class NonBottleneckUnit(nn.Module):
    """The paper's non-bottleneck unit: the initial block's two-branch idea inside a residual unit.
    A 1x1 branch (C/4) and a 3x3-3x3 branch (3C/4) are concatenated back to C and added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        left = channels // 4
        right = channels - left
        self.left = ConvBNReLU(channels, left, 1)
        self.right = nn.Sequential(ConvBNReLU(channels, right // 2), ConvBNReLU(right // 2, right))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.cat([self.left(x), self.right(x)], 1)


class DenseUnit(nn.Module):
    """DSNet-fast bottleneck unit: 1x1 conv to 4*growth, 3x3 conv to growth, concatenated to the input."""

    def __init__(self, cin: int, growth: int = 32):
        super().__init__()
        self.body = nn.Sequential(ConvBNReLU(cin, 4 * growth, 1), ConvBNReLU(4 * growth, growth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class Transition(nn.Sequential):
    """DSNet-fast transition layer: 1x1 conv, then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNReLU(cin, cout, 1), nn.AvgPool2d(2))


class Decoder(nn.ModuleList):
    """The decoder: each block's 3x3 conv, up-sampled to 1/4 and concatenated (the classifier's input)."""

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        out = [self[0](feats[0])]
        for conv, f in zip(self[1:], feats[1:]):
            out.append(F.interpolate(conv(f), size=size, mode="bilinear", align_corners=False))
        return torch.cat(out, 1)


@register_segmenter("dsnet-fast-ss")
class Segmenter(SegmenterBase):

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        stem: int = 24,
        initial: tuple[int, int] = (16, 48),
        block1: tuple[int, int] = (64, 2),
        block2: tuple[int, int] = (128, 2),
        block3: tuple[int, int] = (128, 9),
        block4: tuple[int, int] = (224, 9),
        growth: int = 32,
        decoder: tuple[int, int, int, int] = (24, 32, 16, 24),
    ):
        super().__init__()
        self.num_classes = num_classes
        self.initial = InitialBlock(in_channels, stem, *initial)
        c = self.initial.out_channels
        if c != block1[0]:
            raise ValueError(f"initial block gives {c} channels but block 1 has {block1[0]}")
        self.block1 = nn.Sequential(*[NonBottleneckUnit(c) for _ in range(block1[1])])
        c1 = c
        self.block2 = nn.Sequential(Transition(c1, block2[0]),
                                    *[NonBottleneckUnit(block2[0]) for _ in range(block2[1])])
        c2 = block2[0]
        self.block3, c3 = self._dense_block(c2, block3, growth)
        self.block4, c4 = self._dense_block(c3, block4, growth)
        self.decoder = Decoder(ConvBNReLU(ci, co) for ci, co in zip((c1, c2, c3, c4), decoder))
        self.classifier = deconv_x4(sum(decoder), num_classes)

    @staticmethod
    def _dense_block(cin: int, spec: tuple[int, int], growth: int) -> tuple[nn.Sequential, int]:
        width, units = spec
        layers: list[nn.Module] = [Transition(cin, width)]
        c = width
        for _ in range(units):
            layers.append(DenseUnit(c, growth))
            c += growth
        return nn.Sequential(*layers), c

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four blocks' outputs (1/4 .. 1/32) of an input padded to a multiple of ``stride``."""
        f1 = self.block1(self.initial(x))
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        return [f1, f2, f3, self.block4(f3)]

    @property
    def last_stage(self) -> nn.Module:
        return self.block4
