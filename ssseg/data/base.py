"""Datasets as lists of (image, label) samples, read with Pillow into numpy. No torch here: the
checker, the labeler and the runtime use these readers too."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ssseg.classes import IGNORE_INDEX, INVALID, ClassSet
from ssseg.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path | None = None
    label: Path | None = None


def to_rgb8(im) -> np.ndarray:
    """A Pillow image of any mode as HxWx3 uint8 RGB, as OpenCV's imread gives it to ssseg-cpp. Pillow's own
    convert("RGB") saturates 16-bit grey (a frame turns white), so 16- and 32-bit grey keep their high byte
    (16-bit RGB PNGs already open as their high bytes); CMYK uses OpenCV's integer formula, within 1 of
    the exact (255 - C)(255 - K)/255 and identical to ssseg-cpp; alpha is dropped, palettes are looked up."""
    if im.mode.startswith("I;16") or im.mode == "I":
        grey = (np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "CMYK":
        cmyk = np.asarray(im).astype(np.int32)
        white = 255 - cmyk[..., 3:]  # Pillow's C, M, Y, K (Adobe's inverted JPEGs are already turned back)
        return (white - ((cmyk[..., :3] * white) >> 8)).astype(np.uint8)
    return np.asarray(im.convert("RGB"))


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB (``to_rgb8``)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return to_rgb8(im)
    except FileNotFoundError:
        raise DataError("image file is missing", path=path, fix="restore it or remove it from the split list") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
        raise DataError(f"cannot decode image ({type(e).__name__})", path=path,
                        fix="re-export the file, or pass --skip-bad to leave it out") from None


def read_label_raw(path: Path) -> np.ndarray:
    """HxW uint8 raw label values, exactly as stored (palette indices for P-mode PNGs)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DataError(f"label image has mode {im.mode}, expected a single-channel class-index PNG",
                                path=path, fix="store labels as 8-bit grey or palette PNGs of class ids")
            arr = np.asarray(im)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError("label file is missing", path=path,
                        fix="restore it or remove the image from the split") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot decode label ({type(e).__name__})", path=path,
                        fix="re-export the file, or pass --skip-bad to leave it out") from None
    if arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise DataError(f"label values {arr.min()}..{arr.max()} do not fit 8 bits", path=path)
        arr = arr.astype(np.uint8)
    return arr


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except FileNotFoundError:
        raise DataError("file is missing", path=path, fix="restore it or remove it from the split list") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"not a readable image ({type(e).__name__})", path=path,
                        fix="re-export the file, or pass --skip-bad to leave it out") from None


def map_label(raw: np.ndarray, lut: np.ndarray, path: Path | str) -> np.ndarray:
    """Raw label values -> train ids (255 = ignore); values outside the label space are an error."""
    mapped = lut[raw]
    if (mapped == INVALID).any():
        bad = np.unique(raw[mapped == INVALID])[:8].tolist()
        raise DataError(f"label values {bad} are outside the class set", path=path,
                        fix="fix the label map or choose the matching dataset kind")
    return mapped.astype(np.uint8)


class SegDataset:
    """One split of a dataset: ``load(i)`` returns (HxWx3 uint8 image, HxW uint8 train-id label)."""

    kind = "base"

    def __init__(self, root: Path | None, split: str, classes: ClassSet, samples: list[Sample], lut: np.ndarray | None):
        self.root = root
        self.split = split
        self.classes = classes
        self.samples = samples
        self.lut = classes.identity_lut() if lut is None else lut

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def load_image(self, i: int) -> np.ndarray:
        return read_image(self.samples[i].image)

    def load_label(self, i: int) -> np.ndarray:
        s = self.samples[i]
        return map_label(read_label_raw(s.label), self.lut, s.label)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[i]
        image = read_image(s.image)
        label = self.load_label(i)
        _check_same_size(image.shape[:2], label, s)
        return image, label

    def check(self, i: int, decode_image: bool = True) -> np.ndarray:
        """Validate sample i and return its label; header-only image check when decode_image=False."""
        if decode_image:
            return self.load(i)[1]
        label = self.load_label(i)
        _check_same_size(image_size(self.samples[i].image), label, self.samples[i])
        return label

    def subset(self, ids: list[str] | set[str]) -> "SegDataset":
        keep = set(ids)
        out = copy.copy(self)
        out.samples = [s for s in self.samples if s.id in keep]
        return out


def _check_same_size(image_hw: tuple[int, int], label: np.ndarray, s: Sample) -> None:
    if tuple(image_hw) != label.shape:
        raise DataError(f"image {s.image.name} is {image_hw[1]}x{image_hw[0]} but its label is "
                        f"{label.shape[1]}x{label.shape[0]} (WxH)", path=s.label,
                        fix="regenerate the label at the image's size")


def class_histogram(labels: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """Pixel counts per class (ignore excluded)."""
    hist = np.zeros(num_classes, np.int64)
    for lbl in labels:
        hist += np.bincount(lbl[lbl != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
    return hist


def find_by_stem(folder: Path, stem: str, exts: tuple[str, ...] = IMAGE_EXTS) -> Path | None:
    for ext in exts:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
