"""Augmentation as the paper: random horizontal flip, random scaling from a fixed set, random
translation via a random crop (padded with ignore where the scaled image is smaller)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ssseg.classes import IGNORE_INDEX


def resize_pair(image: np.ndarray, label: np.ndarray | None,
                hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Bilinear for the image, nearest for the label (class ids must not be blended)."""
    h, w = hw
    if image.shape[:2] == (h, w):
        return image, label
    image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    if label is not None:
        label = np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))
    return image, label


def random_crop(image: np.ndarray, label: np.ndarray, crop: tuple[int, int], rng: np.random.Generator,
                fill: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    ch, cw = crop
    h, w = label.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        # Pad at a random side so small scales translate too; padded pixels are ignored by the loss.
        top, left = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
        padded = np.empty((h + ph, w + pw, 3), np.uint8)
        padded[:] = np.asarray(fill, np.uint8)
        padded[top:top + h, left:left + w] = image
        plabel = np.full((h + ph, w + pw), IGNORE_INDEX, np.uint8)
        plabel[top:top + h, left:left + w] = label
        image, label, h, w = padded, plabel, h + ph, w + pw
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


def augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, scales: tuple[float, ...],
            crop: tuple[int, int], fill: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    s = float(scales[int(rng.integers(len(scales)))])
    h, w = label.shape
    image, label = resize_pair(image, label, (max(1, round(h * s)), max(1, round(w * s))))
    image, label = random_crop(image, label, crop, rng, fill)
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.array(image), np.array(label)  # writable copies: torch.from_numpy needs them
