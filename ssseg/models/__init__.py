"""Model factory by name (timm-style): ``create_model(name, **kwargs)``."""

from __future__ import annotations

from collections import ChainMap
from typing import Callable

from torch import nn

from ssseg.models import efficientnet_lite  # noqa: F401 - registers the EfficientNet-Lite segmenters
from ssseg.models.base import SEGMENTER_MODELS, SegmenterBase
from ssseg.models.confidence import ConfidenceNet
from ssseg.models.discriminators import DualDiscGater, FCDiscriminator, ImageDiscriminator, PixelDiscriminator
from ssseg.models.heads import BranchHead, LatentBranch, WithHead
from ssseg.models.segmenter import Segmenter

# a view, not a copy: a segmenter registered after this import (a plug-in, a test's) is created by name too
MODELS: ChainMap[str, Callable[..., nn.Module]] = ChainMap(SEGMENTER_MODELS, {
    "aux-confidence": ConfidenceNet,
    "fc-discriminator": FCDiscriminator,
    "pixel-discriminator": PixelDiscriminator,
    "image-discriminator": ImageDiscriminator,
    "dual-disc-gater": DualDiscGater,
})
# Models that gate pseudo-labels: (softmax, image) -> confidence logits [N, 1, H, W].
GATER_MODELS = ("aux-confidence", "fc-discriminator", "dual-disc-gater")


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        from ssseg.errors import ConfigError

        raise ConfigError(f"unknown model {name!r}", fix=f"choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, *inputs) -> int:
    """Multiply-accumulates of one forward pass (convolutions and matmuls), via torch's FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


__all__ = ["create_model", "count_parameters", "count_macs", "MODELS", "GATER_MODELS", "Segmenter", "SegmenterBase",
           "ConfidenceNet", "FCDiscriminator", "PixelDiscriminator", "ImageDiscriminator", "DualDiscGater",
           "LatentBranch", "BranchHead", "WithHead"]
