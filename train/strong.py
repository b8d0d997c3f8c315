"""Strong augmentation for the self-training consistency loss (Ke et al.: RandAugment + Cutout).

The operators A (image) and B (target) must move pixels identically. Photometric RandAugment ops and Cutout
only change colours, so they run on the image alone in the data loader's workers. The geometric ops (rotate,
shear, translate) are collected into one affine matrix per sample and applied on the device by ``warp`` to
the image, the teacher's prediction and the pseudo-mask alike, since the teacher's prediction only exists
there. Pixels the warp brings in from outside the frame are not valid targets."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

from ssseg.classes import IGNORE_INDEX

PHOTOMETRIC = ("identity", "autocontrast", "equalize", "brightness", "color", "contrast", "sharpness", "posterize",
               "solarize")
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
OPS = PHOTOMETRIC + GEOMETRIC
MAX_ROTATE_DEG, MAX_SHEAR, MAX_TRANSLATE = 30.0, 0.3, 0.3  # RandAugment's ranges (translate: share of the side)


def photometric(image: Image.Image, op: str, m: float) -> Image.Image:
    """One colour op at magnitude m in [0, 1] (the RandAugment variant of FixMatch: magnitudes drawn per use)."""
    if op == "autocontrast":
        return ImageOps.autocontrast(image)
    if op == "equalize":
        return ImageOps.equalize(image)
    if op in ("brightness", "color", "contrast", "sharpness"):
        enhancer = {"brightness": ImageEnhance.Brightness, "color": ImageEnhance.Color,
                    "contrast": ImageEnhance.Contrast, "sharpness": ImageEnhance.Sharpness}[op]
        return enhancer(image).enhance(1.0 + 0.9 * (2 * m - 1))  # factor in [0.1, 1.9]
    if op == "posterize":
        return ImageOps.posterize(image, 8 - int(round(4 * m)))  # keep 8..4 bits
    if op == "solarize":
        return ImageOps.solarize(image, 256 - int(round(256 * m)))
    return image


def geometric(op: str, m: float, sign: float) -> np.ndarray:
    """One geometric op as a 3x3 map from output to input pixel coordinates (centred on the image)."""
    a = np.eye(3)
    if op == "rotate":
        t = math.radians(sign * MAX_ROTATE_DEG * m)
        a[:2, :2] = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    elif op == "shear_x":
        a[0, 1] = sign * MAX_SHEAR * m
    elif op == "shear_y":
        a[1, 0] = sign * MAX_SHEAR * m
    return a


def to_theta(a: np.ndarray, translate: tuple[float, float], hw: tuple[int, int]) -> np.ndarray:
    """A centred pixel map plus a translation (shares of the side) -> affine_grid's theta in normalised
    coordinates (x = 2u / W), so rotations stay rotations on non-square crops."""
    h, w = hw
    s = np.diag([w / 2.0, h / 2.0, 1.0])
    m = np.linalg.inv(s) @ a @ s
    m[0, 2] += 2.0 * translate[0]
    m[1, 2] += 2.0 * translate[1]
    return m[:2].astype(np.float32)


def cutout(image: np.ndarray, rng: np.random.Generator, fill: tuple[int, int, int],
           max_share: float = 0.5) -> np.ndarray:
    """Fill a random square (side up to ``max_share`` of the shorter side) with ``fill``, the normalisation
    mean, so it reads as zeros to the network. Its target is left as it was: the student must infer it."""
    h, w = image.shape[:2]
    side = int(rng.uniform(0, max_share) * min(h, w))
    if side == 0:
        return image
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    out = image.copy()
    out[max(0, cy - side // 2):cy + (side + 1) // 2, max(0, cx - side // 2):cx + (side + 1) // 2] = fill
    return out


def strong_view(image: np.ndarray, rng: np.random.Generator, fill: tuple[int, int, int],
                ops: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """RandAugment (``ops`` ops drawn from OPS, random magnitudes) and Cutout of one uint8 HxWx3 crop.
    Returns the recoloured image (not yet warped) and the theta [2, 3] that ``warp`` applies to it and to its
    targets."""
    pil = Image.fromarray(image)
    a, shift = np.eye(3), [0.0, 0.0]
    for op in rng.choice(OPS, size=ops):
        m, sign = float(rng.uniform()), float(rng.choice((-1.0, 1.0)))
        if op in ("translate_x", "translate_y"):
            shift[op == "translate_y"] += sign * MAX_TRANSLATE * m
        elif op in GEOMETRIC:
            a = a @ geometric(op, m, sign)
        else:
            pil = photometric(pil, op, m)
    return cutout(np.asarray(pil), rng, fill), to_theta(a, tuple(shift), image.shape[:2])


def warp(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Apply each sample's theta to [N, C, H, W] (outside the frame: 0)."""
    grid = F.affine_grid(theta.to(x.device, torch.float32), list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)


def warp_labels(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply each sample's theta to class maps [N, H, W] (nearest); pixels from outside the frame are ignore."""
    shifted = warp(y[:, None].float() + 1.0, theta, mode="nearest")[:, 0].round().long() - 1
    return torch.where(shifted < 0, torch.full_like(shifted, IGNORE_INDEX), shifted)


def warp_valid(theta: torch.Tensor, n: int, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Which pixels of the warped frame come from inside the original frame: [N, H, W] bool."""
    ones = torch.ones(n, 1, *hw, device=device)
    return warp(ones, theta, mode="nearest")[:, 0] > 0.5


class StrongSet(torch.utils.data.Dataset):
    """Two views of one augmented crop for the mean teacher: (weak image, recoloured image, target, theta).
    The weak view is the usual training augmentation (the teacher sees it); the strong one adds RandAugment
    and Cutout, drawn from (seed, epoch, index) like the crop, so a resumed run sees the same views."""

    def __init__(self, base: torch.utils.data.Dataset, seed: int, fill: tuple[int, int, int], ops: int = 2):
        self.base, self.seed, self.fill, self.ops = base, seed, fill, ops

    @property
    def epoch(self) -> int:
        return self.base.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.base.epoch = value

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        weak, target = self.base[i]
        rng = np.random.default_rng([self.seed, self.base.epoch, i, 1])  # a stream apart from the crop's
        strong, theta = strong_view(weak.numpy(), rng, self.fill, self.ops)
        return weak, torch.from_numpy(np.array(strong)), target, torch.from_numpy(theta)  # writable copy
