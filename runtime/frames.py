"""Frames in, frames out: listing image folders, decoding, and the one resize every consumer uses.

Export (calibration and verification), the runtimes and ``ssseg label`` all prepare frames with
``resize_rgb``: Pillow's bilinear filter, the same one training resized with, so an INT8 engine is
calibrated on exactly what it will see."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ssseg.data.base import IMAGE_EXTS, read_image
from ssseg.errors import DataError


def list_images(folder: Path, what: str = "image folder") -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} does not exist", path=folder, fix="pass a folder of frames (.png/.jpg)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def readable_images(folder: Path, what: str = "image folder") -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split the images of ``folder`` into readable ones and (path, reason) for the rest. Checks headers
    only (fast); a frame that passes and still fails to decode is reported when it is read."""
    from PIL import Image

    ok, bad = [], []
    for path in list_images(folder, what):
        try:
            with Image.open(path) as im:
                im.verify()
            ok.append(path)
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
            bad.append((path, type(e).__name__))
    if not ok:
        raise DataError(f"{what} holds no readable images ({len(bad)} unreadable)", path=folder,
                        fix="pass a folder of frames (.png/.jpg), e.g. camvid/val")
    return ok, bad


def resize_rgb(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 -> hw[0] x hw[1] x 3 uint8 (bilinear; unchanged when already that size)."""
    if image.shape[:2] == tuple(hw):
        return np.ascontiguousarray(image)
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.BILINEAR))


def load_frame(path: Path, hw: tuple[int, int]) -> np.ndarray:
    return resize_rgb(read_image(path), hw)


def batches(frames: list[np.ndarray] | Iterator[np.ndarray], size: int, fill: bool = False) -> Iterator[np.ndarray]:
    """Stack frames into uint8 NHWC batches of ``size``. The last, short batch is dropped, or with
    ``fill`` padded by repeating its last frame (for graphs with a fixed batch)."""
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield np.stack(chunk)
            chunk = []
    if chunk and fill:
        chunk += [chunk[-1]] * (size - len(chunk))
        yield np.stack(chunk)


def resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An HxW uint8 label map to ``hw`` with nearest-neighbour (labels are never interpolated)."""
    if labels.shape == tuple(hw):
        return labels
    from PIL import Image

    return np.asarray(Image.fromarray(labels).resize((hw[1], hw[0]), Image.NEAREST))
