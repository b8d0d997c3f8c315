"""The interface every segmenter implements, and the registry that ties a network to its declared spec
(ssseg/segmenters.py). Methods, export and evaluation use only this interface, so every method trains every
registered segmenter:

    feats  = encode(x)        # x padded to a multiple of spec.stride; spec.feature_channels, finest first
    fused  = fuse(feats)      # = decoder(feats), the decoder's features (spec.fused_channels)
    logits = classifier(fused)  # at the padded input's size
    forward(x) = classifier(fuse(encode(pad(x))))[..., :H, :W]

``last_stage`` maps ``feats[-2]`` to ``feats[-1]`` (self-training's second head owns a copy of it), and
``pretrained_parameters`` are those that ``load_pretrained`` fills (the optimiser gives them their own rate)."""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn

from ssseg.models.layers import pad_to_multiple
from ssseg.segmenters import SegmenterSpec, get_spec


class SegmenterBase(nn.Module):
    spec: SegmenterSpec  # set by @register_segmenter
    encoder: nn.Module  # the pretrained part, if the spec has weights
    decoder: nn.Module
    classifier: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.freeze_encoder_bn = False  # keep the encoder's BatchNorm statistics (set by training, not saved)

    @property
    def stride(self) -> int:
        return self.spec.stride

    @property
    def feature_channels(self) -> tuple[int, ...]:
        return self.spec.feature_channels

    @property
    def fused_channels(self) -> int:
        return self.spec.fused_channels

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def fuse(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(feats)

    @property
    def last_stage(self) -> nn.Module:
        raise NotImplementedError

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.fuse(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.decode(self.encode(pad_to_multiple(x, self.stride)))[..., :h, :w]

    def load_pretrained(self) -> int:
        """Fill the encoder with the spec's ImageNet weights; returns how many tensors were loaded."""
        raise NotImplementedError(f"{self.spec.name} has no pretrained weights")

    def pretrained_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters() if self.spec.pretrained else iter(())

    def train(self, mode: bool = True) -> "SegmenterBase":
        super().train(mode)
        if mode and self.freeze_encoder_bn and self.spec.pretrained:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


SEGMENTER_MODELS: dict[str, Callable[..., SegmenterBase]] = {}


def register_segmenter(name: str):
    """``@register_segmenter("name")`` on a SegmenterBase subclass: its spec is the declared one of that name."""

    def add(cls: type[SegmenterBase]) -> type[SegmenterBase]:
        if name in SEGMENTER_MODELS:
            raise ValueError(f"segmenter {name!r} is registered twice")
        cls.spec = get_spec(name)
        SEGMENTER_MODELS[name] = cls
        return cls

    return add
