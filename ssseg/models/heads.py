"""Second heads on the segmenter, used only while training: the latent-classes branch and the self-training
task-2 heads. Export deploys the segmenter alone, so these never reach a model directory."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ssseg.models.base import SegmenterBase
from ssseg.models.layers import deconv_x4, pad_to_multiple


class LatentBranch(nn.Module):
    """Zatsarynna et al.'s latent branch: a second classifier at the segmenter's last layer (theirs branches at
    the ASPP head), reading the decoder's features and predicting ``latent_classes`` maps."""

    def __init__(self, in_channels: int, latent_classes: int = 20):
        super().__init__()
        self.latent_classes = latent_classes
        self.classifier = deconv_x4(in_channels, latent_classes)

    def forward(self, feats: list[torch.Tensor], fused: torch.Tensor) -> torch.Tensor:
        return self.classifier(fused)


class BranchHead(nn.Module):
    """Ke et al.'s task-2 head g: shares the segmenter's first blocks and owns the last ``own_blocks`` of them.
    own_blocks=2 (stage 2): its own last encoder stage (the segmenter's ``last_stage``: block 4 of the paper's
    net), decoder and classifier; own_blocks=1 (stage 3): its own decoder and classifier (the segmenter's head),
    sharing the whole encoder. Freshly initialised, like the paper's second branch."""

    def __init__(self, segmenter: SegmenterBase, own_blocks: int):
        super().__init__()
        if own_blocks not in (1, 2):
            raise ValueError(f"own_blocks must be 1 or 2, got {own_blocks}")
        self.own_blocks = own_blocks
        self.block4 = copy.deepcopy(segmenter.last_stage) if own_blocks == 2 else None
        self.decoder = copy.deepcopy(segmenter.decoder)
        self.classifier = copy.deepcopy(segmenter.classifier)
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, feats: list[torch.Tensor], fused: torch.Tensor) -> torch.Tensor:
        if self.block4 is not None:
            feats = [*feats[:-1], self.block4(feats[-2])]
        return self.classifier(self.decoder(feats))


class WithHead(nn.Module):
    """The segmenter and a second head in one forward pass (one DistributedDataParallel forward per step):
    returns (segmenter logits, head logits), both cropped to the input size."""

    def __init__(self, segmenter: SegmenterBase, head: nn.Module):
        super().__init__()
        self.segmenter, self.head = segmenter, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        feats = self.segmenter.encode(pad_to_multiple(x, self.segmenter.stride))
        fused = self.segmenter.fuse(feats)
        return self.segmenter.classifier(fused)[..., :h, :w], self.head(feats, fused)[..., :h, :w]
