"""Discriminators of the adversarial confidence sources (method.md sections 2-3), and the gaters built from
them. A gater takes the segmenter's softmax (and optionally the image) and returns per-pixel confidence
logits [N, 1, H, W], like the auxiliary net, so the pseudo-labels, ``ssseg eval --gate``, the exported
labeler and every runtime use any of them the same way."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def strided_stack(cin: int, widths: tuple[int, ...], slope: float, kernel: int = 4,
                  norm: bool = False) -> nn.Sequential:
    """Stride-2 convolutions (each halving the map), each followed by [BatchNorm and] Leaky ReLU."""
    layers: list[nn.Module] = []
    for w in widths:
        layers.append(nn.Conv2d(cin, w, kernel, stride=2, padding=1))
        layers += [nn.BatchNorm2d(w)] if norm else []
        layers.append(nn.LeakyReLU(slope, inplace=True))
        cin = w
    return nn.Sequential(*layers)


class FCDiscriminator(nn.Module):
    """Hung et al. (2018): five 4x4 stride-2 convolutions {64, 128, 256, 512, 1}, Leaky ReLU 0.2 after all
    but the last, no batch norm, logits bilinearly up-sampled to the input size. As a gater its sigmoid is
    the confidence that a pixel's prediction looks like ground truth."""

    with_rgb = False

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256, 512), slope: float = 0.2):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(*strided_stack(num_classes, widths, slope),
                                 nn.Conv2d(widths[-1], 1, 4, stride=2, padding=1))

    def forward(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return F.interpolate(self.net(probs), size=probs.shape[-2:], mode="bilinear", align_corners=False)


class PixelDiscriminator(nn.Module):
    """D2 of the two-discriminator method: an encoder-decoder confidence network with output stride 16
    (four stride-2 stages) and 4x up-sampling in the decoder (two transposed convolutions), then bilinear
    to the input size. Trained like the auxiliary net, against the correctness map."""

    with_rgb = False

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256, 256), slope: float = 0.2):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = strided_stack(num_classes, widths, slope, kernel=3, norm=True)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(widths[-1], 128, 4, stride=2, padding=1), nn.BatchNorm2d(128),
            nn.LeakyReLU(slope, inplace=True),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(64, 1, 3, padding=1))

    def forward(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return F.interpolate(self.decoder(self.encoder(probs)), size=probs.shape[-2:], mode="bilinear",
                             align_corners=False)


class ImageDiscriminator(nn.Module):
    """D1 of the two-discriminator method: real (one-hot ground truth) vs predicted probability maps, one
    logit per image (strided convolutions, global average pooling). Its probability on an unlabeled image
    is that image's threshold for D2's map."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256, 512), slope: float = 0.2):
        super().__init__()
        self.num_classes = num_classes
        self.features = strided_stack(num_classes, widths, slope)
        self.head = nn.Conv2d(widths[-1], 1, 1)  # on the pooled features; a convolution exports where Gemm would not

    def logits_map(self, probs: torch.Tensor) -> torch.Tensor:
        """[N, 1, 1, 1]: broadcasts against a per-pixel map."""
        return self.head(self.features(probs).mean((2, 3), keepdim=True))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.logits_map(probs).reshape(-1, 1)  # [N, 1]


class DualDiscGater(nn.Module):
    """D2's map against D1's per-image threshold as one confidence map: logits z2 - z1, so that
    sigmoid(logits) >= 0.5 exactly where D2's logit reaches D1's, i.e. sigmoid(z2) >= sigmoid(z1), the
    method's pseudo-label rule. Its deployment threshold is therefore 0.5."""

    with_rgb = False

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.d1 = ImageDiscriminator(num_classes)
        self.d2 = PixelDiscriminator(num_classes)

    def forward(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return self.d2(probs) - self.d1.logits_map(probs)
