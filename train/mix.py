"""Strong augmentation on the device, for weak-to-strong consistency and its supervised control: colour jitter,
grayscale and Gaussian blur on 0..1 RGB batches (ST++/UniMatch's strong view, without the hue shift), CutMix
between the images of a batch, and the feature-dropout masks of the perturbed view.

Every random draw comes from ``step_generator(seed, iteration)``, a CPU generator: the same iteration gets the
same augmentation on any device and after a resume, which keeps ``--resume`` bit-exact."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ST++ / UniMatch: ColorJitter(0.5, 0.5, 0.5, 0.25) with p 0.8, grayscale p 0.2, blur p 0.5 (sigma 0.1..2), CutMix 0.5
JITTER_P, JITTER = 0.8, 0.5
GRAY_P, BLUR_P, BLUR_SIGMA = 0.2, 0.5, (0.1, 2.0)
CUTMIX_P, CUTMIX_AREA = 0.5, (0.02, 0.4)
LUMA = (0.299, 0.587, 0.114)


def step_generator(seed: int, iteration: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + iteration)


def uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def photometric(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The strong view's colours of a batch x [N, 3, H, W] in 0..1; the geometry is untouched, so the weak
    view's pseudo-labels stay aligned."""
    n = x.shape[0]
    view = lambda t: t.to(x.device, x.dtype).view(n, 1, 1, 1)  # noqa: E731
    jitter = view(torch.rand(n, generator=g) < JITTER_P)
    b, c, s = (view(uniform(g, n, 1 - JITTER, 1 + JITTER)) for _ in range(3))
    out = x * (1 + jitter * (b - 1))
    mean = gray(out).mean((2, 3), keepdim=True)
    out = mean + (out - mean) * (1 + jitter * (c - 1))
    luma = gray(out)
    out = (luma + (out - luma) * (1 + jitter * (s - 1))).clamp(0, 1)
    to_gray = view(torch.rand(n, generator=g) < GRAY_P)
    out = out + to_gray * (gray(out) - out)
    blur = torch.rand(n, generator=g) < BLUR_P
    sigmas = uniform(g, n, *BLUR_SIGMA)
    if bool(blur.any()):
        out = torch.stack([gaussian_blur(out[i], float(sigmas[i])) if blur[i] else out[i] for i in range(n)])
    return out


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """One image [3, H, W], separable Gaussian, reflect padding."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = image.unsqueeze(0)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.squeeze(0)


def cutmix_boxes(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """[N, H, W] bool: where image i takes the pixels of image (i - 1) mod N (``torch.roll(x, 1, 0)``). With
    probability CUTMIX_P a box of 2-40 % of the area, aspect 0.3-3.3, else nothing."""
    boxes = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        use = bool(torch.rand(1, generator=g) < CUTMIX_P)
        area = float(uniform(g, 1, *CUTMIX_AREA)) * h * w
        ratio = math.exp(float(uniform(g, 1, math.log(0.3), math.log(1 / 0.3))))
        bh, bw = min(h, max(1, round(math.sqrt(area * ratio)))), min(w, max(1, round(math.sqrt(area / ratio))))
        y = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        x = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        if use and n > 1:
            boxes[i, y:y + bh, x:x + bw] = True
    return boxes


def cutmix(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mix [N, ...] images or maps with the boxes: inside, the previous image's content."""
    m = boxes.to(x.device)
    if x.dim() == 4:
        m = m.unsqueeze(1)
    return torch.where(m, torch.roll(x, 1, 0), x)


def dropout_masks(channels: list[int], n: int, g: torch.Generator, device: torch.device,
                  p: float = 0.5) -> list[torch.Tensor]:
    """Channel dropout masks [n, C, 1, 1] (kept channels scaled by 1 / (1 - p)), one per feature map."""
    return [((torch.rand(n, c, 1, 1, generator=g) >= p).float() / (1 - p)).to(device) for c in channels]


def strong_labeled(unit: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """--strong-aug on a labeled batch (0..1 RGB): the strong view's colours, then CutMix, the labels mixed
    with the same boxes."""
    boxes = cutmix_boxes(len(unit), *unit.shape[-2:], g)
    return cutmix(photometric(unit, g), boxes), cutmix(labels, boxes)
