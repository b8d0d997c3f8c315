"""Building blocks shared by the segmenter and the confidence network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel - 1) // 2, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom/right so H and W divide ``multiple`` (zero is the normalised mean colour)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if (ph or pw) else x


def deconv_x4(cin: int, cout: int, bias: bool = True) -> nn.ConvTranspose2d:
    """8x8 transposed convolution, stride 4, padding 2: exactly 4x the input size."""
    return nn.ConvTranspose2d(cin, cout, kernel_size=8, stride=4, padding=2, bias=bias)
