"""The three exported graphs as torch modules. Each takes the frame as it comes off the decoder
(uint8, NHWC, RGB, already resized to the model's input size) and normalises inside the graph, so
no consumer re-implements preprocessing; model.json records the constants anyway.

Shapes: image [N, H, W, 3] uint8 -> segmenter: logits [N, C, H, W] float32;
aux: probs [N, C, H, W] float32 (+ image) -> confidence [N, H, W] float32 in [0, 1];
labeler: image -> labels [N, H, W] uint8 (arg-max) and confidence [N, H, W] float32 (the confidence net's, or
max softmax / top-2 margin / normalised entropy of the segmenter's softmax: ReduceMax, TopK, Log + ReduceSum)."""

from __future__ import annotations

import torch
from torch import nn

from ssseg.models.confidence import ConfidenceNet, free_confidence


class Normalize(nn.Module):
    """uint8 NHWC RGB -> float NCHW ``(x / 255 - mean) / std``, folded into one multiply-add."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        mean_t, std_t = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        self.register_buffer("scale", (1.0 / (255.0 * std_t)).float().view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean_t / std_t).float().view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.permute(0, 3, 1, 2).float() * self.scale + self.shift


class SegmenterGraph(nn.Module):
    def __init__(self, segmenter: nn.Module, normalize: Normalize):
        super().__init__()
        self.normalize, self.segmenter = normalize, segmenter

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.segmenter(self.normalize(image))


class AuxGraph(nn.Module):
    def __init__(self, aux: ConfidenceNet, normalize: Normalize):
        super().__init__()
        self.normalize, self.aux = normalize, aux

    def forward(self, probs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        rgb = self.normalize(image) if self.aux.with_rgb else None
        return drop_channel(torch.sigmoid(self.aux(probs, rgb)))


def drop_channel(x: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> [N, H, W] as a max over the one channel (exact), not Squeeze: OpenCV 4.6's ONNX
    importer (Debian 12's, which the C++ runtime's CPU backend uses) takes Squeeze only in its pre-opset-13
    form, and opset 17's ReduceMax keeps its axes as an attribute that every runtime here parses."""
    return x.amax(1)


def argmax_uint8(logits: torch.Tensor) -> torch.Tensor:
    """Arg-max over classes as uint8. Through float because TensorRT 8.6 casts to UINT8 only from
    FLOAT/HALF (its ArgMax yields INT32); class ids < 255 are exact in float."""
    return torch.argmax(logits, 1).float().to(torch.uint8)


def softmax_classes(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the class axis, written out. ONNX Runtime's CPU Softmax on a non-last axis transposes
    internally: 99 ms of a 670 ms labeler at 512x1024 on 2 cores, against 12 ms for this form (same
    values to 1e-7; TensorRT parses ReduceMax/Exp/ReduceSum/Div natively)."""
    e = torch.exp(logits - logits.amax(1, keepdim=True))
    return e / e.sum(1, keepdim=True)


class LabelerGraph(nn.Module):
    """image -> (labels, confidence): the confidence from the confidence net, or, with ``free``, from the
    segmenter's own softmax (softmax, margin, entropy: no network, nearly free); labels alone with neither."""

    def __init__(self, segmenter: nn.Module, aux: ConfidenceNet | None, normalize: Normalize, free: str | None = None):
        super().__init__()
        self.normalize, self.segmenter, self.aux, self.free = normalize, segmenter, aux, free

    def forward(self, image: torch.Tensor):
        x = self.normalize(image)
        logits = self.segmenter(x)
        labels = argmax_uint8(logits)
        if self.aux is None and self.free is None:
            return labels
        probs = softmax_classes(logits)
        if self.free is not None:
            return labels, free_confidence(probs, self.free)
        conf = drop_channel(torch.sigmoid(self.aux(probs, x if self.aux.with_rgb else None)))
        return labels, conf


def build_graphs(segmenter_ckpt: dict, aux_ckpt: dict | None, mean: tuple[float, ...], std: tuple[float, ...],
                 where: str = "checkpoint", free: str | None = None) -> dict[str, nn.Module]:
    """The export graphs in eval mode from checkpoints: segmenter, aux (when there is one) and labeler (gated
    by ``free`` instead of the confidence net when given). The PyTorch backend runs these same modules, so
    every backend computes the same function."""
    from ssseg.checkpoint import build_from_checkpoint

    norm = Normalize(mean, std)
    seg = build_from_checkpoint(segmenter_ckpt, where).eval()
    aux = build_from_checkpoint(aux_ckpt, where).eval() if aux_ckpt is not None else None
    graphs: dict[str, nn.Module] = {"segmenter": SegmenterGraph(seg, norm)}
    if aux is not None:
        graphs["aux"] = AuxGraph(aux, norm)
    graphs["labeler"] = LabelerGraph(seg, None if free else aux, norm, free)
    return {name: g.eval() for name, g in graphs.items()}
