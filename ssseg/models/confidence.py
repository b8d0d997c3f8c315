"""The auxiliary confidence network, exactly the paper's Table 1 (paper 3.2.2).

Input: the segmenter's softmax map (C channels) or softmax + normalised RGB (C + 3). Output:
per-pixel logits of "the segmenter is right here"; ``confidence`` applies the sigmoid."""

from __future__ import annotations

import math

import torch
from torch import nn

from ssseg.models.layers import ConvBNReLU, deconv_x4, pad_to_multiple


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling without the image-pooling branch: parallel dilated 3x3 convs."""

    def __init__(self, cin: int, branch: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 16)):
        super().__init__()
        self.branches = nn.ModuleList(ConvBNReLU(cin, branch, 3, dilation=d) for d in dilations)
        self.out_channels = branch * len(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


WIDTHS, ASPP_BRANCH = (32, 64, 128, 256, 256), 32  # the paper's Table 1


def width_kwargs(scale: float) -> dict:
    """ConfidenceNet kwargs with every channel count times ``scale`` (at least 4); {} at 1, the paper's net. The
    cost falls with the square: 0.125 is about 7 % of the segmenter's multiply-adds (the paper's: 400 %)."""
    if scale == 1.0:
        return {}
    return {"widths": tuple(max(4, round(c * scale)) for c in WIDTHS),
            "aspp_branch": max(4, round(ASPP_BRANCH * scale))}


class ConfidenceNet(nn.Module):
    stride = 4

    def __init__(self, num_classes: int, with_rgb: bool = False, widths: tuple[int, ...] = WIDTHS,
                 aspp_branch: int = ASPP_BRANCH, dilations: tuple[int, ...] = (1, 2, 4, 8, 16)):
        super().__init__()
        self.num_classes = num_classes
        self.with_rgb = with_rgb
        cin = num_classes + (3 if with_rgb else 0)
        strides = (2, 1, 2, 1, 1)
        layers = []
        for w, s in zip(widths, strides):
            layers.append(ConvBNReLU(cin, w, 3, stride=s))
            cin = w
        self.features = nn.Sequential(*layers)
        self.aspp = ASPP(cin, aspp_branch, dilations)
        self.head = deconv_x4(self.aspp.out_channels, 1)

    def forward(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if self.with_rgb:
            if image is None:
                raise ValueError("this confidence net was built with_rgb=True and needs the image")
            probs = torch.cat([probs, image], 1)
        h, w = probs.shape[-2:]
        x = pad_to_multiple(probs, self.stride)
        return self.head(self.aspp(self.features(x)))[..., :h, :w]

    def confidence(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.forward(probs, image))


def segment_with_confidence(segmenter: nn.Module, aux: ConfidenceNet,
                            x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images -> (segmenter logits, confidence logits): the pipeline every gate uses (stage 3,
    ``ssseg eval --gate`` and the exported labeler). The softmax is taken in float32."""
    logits = segmenter(x)
    return logits, aux(torch.softmax(logits.float(), 1), x if aux.with_rgb else None)


def free_confidence(probs: torch.Tensor, kind: str) -> torch.Tensor:
    """Softmax [N, C, H, W] -> confidence [N, H, W] in [0, 1] with no network: ``softmax`` the top class's
    probability, ``margin`` its lead over the second, ``entropy`` one minus the entropy over log C."""
    if kind == "softmax":
        return probs.amax(1)
    if kind == "margin":
        top2 = torch.topk(probs, 2, dim=1).values
        return top2[:, 0] - top2[:, 1]
    if kind == "entropy":
        # For OpenCV 4.6 (ssseg-cpp's CPU backend): Add and Relu rather than clamps (it cannot import opset-11
        # Clip), the class sum as C x ReduceMean (whose axes stay an attribute at opset 17; a second ReduceSum
        # with an axes input fails there), kept as one channel and max-reduced (no Squeeze)
        c = probs.shape[1]
        h = -c * (probs * torch.log(probs + 1e-12)).mean(1, keepdim=True)
        return torch.relu(1.0 - h / math.log(c)).amax(1)
    raise ValueError(f"unknown confidence kind {kind!r}")
